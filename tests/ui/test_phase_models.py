"""Reloading a finished smoke run phase by phase (teacher MiniLM-L6, student MiniLM cut to one layer, WNUT-16)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from alad_kit.analysis.probes import PHASES, PROBE_COLUMNS, UMAP_COLUMNS, load_run_frame
from alad_kit.core.config import RunConfig
from alad_kit.data.task_data import subsample as _subsample
from alad_kit.pipeline.run import Experiment
from alad_kit.training.phases import alignment_quality
from alad_kit.ui import phase_models

pytestmark = pytest.mark.slow  # two real smoke runs and UMAP fits: about a minute on two cores

BASE = dict(task="ner", teacher="minilm-l6", student="minilm-l6", student_layers=(0,), scale="smoke",
            data_dir="wnut16", device="cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Frozen W1 and W3 runs sharing one cache (run through load_phase_models' ensure_run)."""
    tmp = tmp_path_factory.mktemp("phase_models")
    cfgs = {w: RunConfig(mode="frozen", window=w, out=str(tmp / f"w{w}"), cache_dir=str(tmp / "cache"), **BASE)
            for w in (1, 3)}
    return {w: phase_models.load_phase_models(cfg) for w, cfg in cfgs.items()}


def test_each_phase_is_the_adapter_the_run_measured(runs):
    pm = runs[3]
    assert pm.phases == list(PHASES)
    metrics = pd.read_json(f"{pm.cfg.out}/metrics.json", typ="series")
    exp = Experiment(pm.cfg)
    exp.load_data()
    exp.load_models()
    probe = exp.alignment_data(exp.task.texts(_subsample(exp.splits["validation"], pm.probe_texts)), "probe")
    for phase in PHASES:
        measured = alignment_quality(pm.models[phase], probe)
        assert measured["mse"] == pytest.approx(metrics["alignment"][phase]["mse"], rel=1e-5), phase
    # phases 1-2 share the run's student; phase 3 of a frozen run does too, with its own adapter copy
    assert pm.encoder("after_phase3") is pm.encoder("before_phase1")
    assert pm.adapter("after_phase3") is not pm.adapter("after_phase2")


def test_modes_without_adapter_and_missing_runs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="has no adapter"):
        phase_models.load_phase_models(RunConfig(mode="lora", out=str(tmp_path / "x"), **BASE))
    with pytest.raises(FileNotFoundError, match="no finished run"):
        phase_models.load_phase_models(RunConfig(mode="frozen", out=str(tmp_path / "x"), **BASE), ensure_run=False)


def test_models_come_from_the_run_s_record_never_from_a_rebuilt_run(runs, monkeypatch):
    """No Experiment, no phase-1 corpus, no model hashing: the record names the adapter folders."""
    def refuse(*args, **kwargs):
        raise AssertionError("load_phase_models rebuilt what the run recorded")

    monkeypatch.setattr("alad_kit.pipeline.run.Experiment.__init__", refuse)
    monkeypatch.setattr("alad_kit.training.cache.model_fingerprint", refuse)
    monkeypatch.setattr("alad_kit.data.task_data.load_corpus_texts", refuse)
    again = phase_models.load_phase_models(runs[1].cfg, ensure_run=False)
    for phase in PHASES:
        mine, theirs = again.adapter(phase).state_dict(), runs[1].adapter(phase).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), phase


def test_a_run_without_a_record_is_a_one_line_error_naming_its_file(runs, tmp_path):
    import json
    import shutil

    cfg = runs[1].cfg
    old = RunConfig(**{**cfg.__dict__, "out": str(tmp_path / "old")})
    shutil.copytree(cfg.out, old.out)
    path = Path(old.out) / "metrics.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "record"}))
    with pytest.raises(ValueError, match=r"^\S+/old/metrics.json: no 'record' of what the run built [^\n]*$"):
        phase_models.load_phase_models(old, ensure_run=False)


def test_missing_adapter_cache_is_named(runs, tmp_path):
    import shutil

    cfg = runs[1].cfg
    moved = RunConfig(**{**cfg.__dict__, "out": str(tmp_path / "copy"), "cache_dir": str(tmp_path / "empty")})
    shutil.copytree(cfg.out, moved.out)  # same configuration, other cache: the adapters are not there
    with pytest.raises(FileNotFoundError, match="cached adapter .* is missing"):
        phase_models.load_phase_models(moved, ensure_run=False)


def test_word_probes_carry_tags_per_phase(runs):
    words = phase_models.word_probes(runs[3], n_sentences=4, phases=("before_phase1", "after_phase2"))
    assert list(words.columns) == list(PROBE_COLUMNS)
    assert list(dict.fromkeys(words["phase"])) == ["before_phase1", "after_phase2"]
    assert words["tag"].str.len().min() > 0 and "O" in set(words["tag"])
    assert words["sentence"].nunique() == 4
    before, after = (words[words["phase"] == p]["mse"].mean() for p in ("before_phase1", "after_phase2"))
    assert after < before  # alignment moved the adapted words towards the teacher
    with pytest.raises(ValueError, match="not in run"):
        phase_models.word_probes(runs[3], phases=("after_phase9",))


def test_phase_umap_is_one_map_with_fixed_teacher_points(runs):
    df = phase_models.phase_umap(runs[3], n_sentences=3, phases=("before_phase1", "after_phase1", "after_phase3"))
    assert list(df.columns) == [*UMAP_COLUMNS, "phase"]
    teacher = {p: rows for p, rows in df[df["source"] == "teacher"].groupby("phase")}
    n = len(teacher["before_phase1"])
    assert set(teacher) == {"before_phase1", "after_phase1", "after_phase3"} and n > 10
    for rows in teacher.values():  # the teacher's coordinates are shared by every phase
        np.testing.assert_array_equal(rows[["x", "y"]].to_numpy(), teacher["before_phase1"][["x", "y"]].to_numpy())
    adapted = df[(df["source"] == "adapted") & (df["phase"] == "after_phase1")]
    assert list(adapted["index"]) == list(range(n)) and list(adapted["token"]) == list(teacher["after_phase1"]["token"])
    assert not np.allclose(adapted[["x", "y"]], df[(df["source"] == "adapted") & (df["phase"] == "before_phase1")][["x", "y"]])


def test_explorer_data_writes_umaps_once_and_probes_typed_text(runs):
    cfgs = [pm.cfg for pm in runs.values()]
    data = phase_models.explorer_data(cfgs, umap_sentences=3)
    assert data.windows == [1, 3]
    assert set(data.umaps) == {1, 3} and set(data.umaps[1]["phase"]) == set(PHASES)
    written = [_mtime(cfg.out) for cfg in cfgs]
    again = phase_models.explorer_data(cfgs, umap_sentences=3, prober=False)
    assert [_mtime(cfg.out) for cfg in cfgs] == written  # fresh maps are reused, not refitted
    assert again.embed is None
    typed = data.probe_sentence("Alice flew to Paris on Monday", 3)
    assert list(dict.fromkeys(typed["phase"])) == list(PHASES)
    assert list(typed[typed["phase"] == "after_phase3"]["token"]) == "Alice flew to Paris on Monday".split()
    assert load_run_frame(cfgs[0].out, "umap") is not None
    with pytest.raises(ValueError, match="one configuration per window"):
        phase_models.explorer_data([cfgs[0], cfgs[0]])


def _mtime(run_dir):
    return (Path(run_dir) / "umap.csv").stat().st_mtime_ns
