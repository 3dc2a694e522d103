"""core.runkey: the one run key and the one "finished" rule (alad run's checkpoints, sweeps, studies)."""

import json
from pathlib import Path

from alad_kit.core.checkpoint import digest
from alad_kit.core.config import HEAD_LR, RunConfig
from alad_kit.core.runkey import checkpoint_digest, is_finished, run_key, run_state


def _cfg(tmp_path, name="run", **kw):
    base = dict(task="ner", teacher="minilm-l6", student="minilm-l6", student_layers=(0,), mode="frozen", window=3)
    return RunConfig(out=str(tmp_path / name), cache_dir=str(tmp_path / "cache"), **(base | kw))


def _finish(cfg, **metrics):
    """A metrics.json as run() writes it (the configuration without ``extra``)."""
    body = {"scores": {"f1_overall": 0.5},
            "config": {k: v for k, v in cfg.__dict__.items() if k != "extra"}} | metrics
    path = Path(cfg.out) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))
    return json.loads(path.read_text())


def test_run_key_ignores_where_a_run_writes(tmp_path):
    a, b = _cfg(tmp_path, "a"), _cfg(tmp_path / "elsewhere", "b", device="cpu", use_cache=False)
    assert run_key(a) == run_key(b)
    assert run_key(a)["student_layers"] == [0]  # JSON form, as in metrics.json
    assert run_key(a) != run_key(_cfg(tmp_path, window=5))


def test_a_run_stored_before_a_field_existed_is_the_default_run(tmp_path):
    cfg = _cfg(tmp_path)
    old = {k: v for k, v in run_key(cfg).items() if k != "lr"}  # written before RunConfig.lr
    assert run_key(old) == run_key(cfg)
    assert run_key(old) != run_key(_cfg(tmp_path, lr=1e-3))


def test_a_study_s_own_files_are_named_relative_to_the_study(tmp_path):
    here = _cfg(tmp_path / "study" / "row", "seed0", teacher_finetuned=str(tmp_path / "study/teacher/seed0/t"))
    moved = _cfg(tmp_path / "moved" / "row", "seed0", teacher_finetuned=str(tmp_path / "moved/teacher/seed0/t"))
    assert run_key(here)["teacher_finetuned"] == "<study>/teacher/seed0/t"
    assert run_key(here) == run_key(moved)
    outside = _cfg(tmp_path / "moved" / "row", "seed0", teacher_finetuned=str(tmp_path / "study/teacher/seed0/t"))
    assert run_key(outside) != run_key(here)


def test_finished_only_for_the_same_run_with_a_reason_otherwise(tmp_path):
    cfg = _cfg(tmp_path)
    assert run_state(cfg).metrics is None and run_state(cfg).problem is None and not is_finished(cfg)
    written = _finish(cfg)
    assert run_state(cfg).metrics == written and is_finished(cfg)
    assert is_finished(RunConfig(**{**cfg.__dict__, "device": "cpu"}))  # a place field is the same run
    other = run_state(_cfg(tmp_path, window=5))  # same out, other window
    assert other.metrics is None and "a run of another configuration (window: 3 != 5)" in other.problem
    (tmp_path / "run" / "metrics.json").write_text("{not json")
    assert "unreadable metrics.json" in run_state(cfg).problem
    (tmp_path / "run" / "metrics.json").write_text("{}")
    assert "has no 'config'" in run_state(cfg).problem


def test_a_run_made_with_another_default_lr_is_stale(tmp_path):
    """A run made before HEAD_LR moved holds the same RunConfig but trained the head at another rate."""
    cfg = _cfg(tmp_path)
    _finish(cfg, phase3_lr={"adapter": 1e-4, "head": 2e-3})
    assert not is_finished(cfg) and "budgets" in run_state(cfg).problem
    _finish(cfg, phase3_lr={"adapter": 1e-4, "head": HEAD_LR})
    assert is_finished(cfg)
    explicit = _cfg(tmp_path, head_lr=2e-3)  # the same rate given on the command line is that run
    _finish(explicit, phase3_lr={"adapter": 1e-4, "head": 2e-3})
    assert is_finished(explicit)


def test_checkpoint_digest_is_the_one_phase3_checkpoints_always_carried(tmp_path):
    cfg = _cfg(tmp_path, teacher_finetuned=str(tmp_path / "t"))
    from dataclasses import asdict

    legacy = {k: v for k, v in asdict(cfg).items() if k not in ("out", "extra", "device")}  # run.py's formula
    assert checkpoint_digest(cfg) == digest(legacy)
    assert checkpoint_digest(cfg) == checkpoint_digest(_cfg(tmp_path, "other", teacher_finetuned=str(tmp_path / "t")))
    assert checkpoint_digest(cfg) != checkpoint_digest(_cfg(tmp_path, window=5, teacher_finetuned=str(tmp_path / "t")))
