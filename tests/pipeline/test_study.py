"""``alad study``: the rows, skipping and resuming, and the whole study end to end at smoke scale."""

import json

import pytest

import alad_kit.pipeline.run
from alad_kit.analysis.claims import CHECKS
from alad_kit.core.config import RunConfig
from alad_kit.core.io import write_json_atomic
from alad_kit.pipeline.study import (
    ROW_NAMES,
    Progress,
    is_finished,
    plan,
    run_study,
    select_rows,
    write_outputs,
)
from alad_kit.training.trainer import TrainingInterrupted

BASE = dict(task="ner", teacher="minilm-l6", student="minilm-l6", student_layers=(0,), scale="smoke", device="cpu")
E2E_ROWS = ["teacher", "finetune", "head", "frozen-w5", "frozen-w5-factorised", "frozen-w5-tuned-teacher", "joint-w5"]


def test_every_claim_names_study_rows():
    assert {c.a for c in CHECKS} | {c.b for c in CHECKS} <= set(ROW_NAMES)
    assert len(set(ROW_NAMES)) == len(ROW_NAMES)


def test_plan_places_every_row_and_seed(tmp_path):
    runs = plan(select_rows(None), [0, 1, 2], tmp_path, **BASE)
    assert len(runs) == 1 + 3 * (len(ROW_NAMES) - 1)  # the teacher runs one seed
    by_dir = {str(cfg.out): (row, cfg) for row, cfg in runs}
    row, cfg = by_dir[str(tmp_path / "frozen-w5-factorised" / "seed2")]
    assert (cfg.mode, cfg.window, cfg.adapter_kind, cfg.seed) == ("frozen", 5, "factorised", 2)
    assert by_dir[str(tmp_path / "random-joint-w5" / "seed0")][1].random_adapter
    assert by_dir[str(tmp_path / "teacher" / "seed0")][1].is_teacher_run
    assert str(tmp_path / "teacher" / "seed1") not in by_dir
    # the teacher run does not depend on the student: every student's study holds the same configuration
    assert by_dir[str(tmp_path / "teacher" / "seed0")][1].student_layers is None
    assert by_dir[str(tmp_path / "head" / "seed0")][1].student_layers == BASE["student_layers"]
    # the tuned-teacher row aligns to the M_L that this study's teacher run fine-tuned, the others to M_L
    tuned = tmp_path / "teacher" / "seed0" / "teacher_finetuned"
    assert by_dir[str(tmp_path / "frozen-w5-tuned-teacher" / "seed1")][1].teacher_finetuned == str(tuned)
    assert by_dir[str(tmp_path / "frozen-w5" / "seed1")][1].teacher_finetuned is None
    # the probed-layer rows align to the teacher layer of the study's own layer probe
    assert by_dir[str(tmp_path / "joint-w5-probed-layer" / "seed2")][1].teacher_probe == str(
        tmp_path / "probe_layers.json")
    assert by_dir[str(tmp_path / "joint-w5" / "seed2")][1].teacher_probe is None
    assert [r.name for r in select_rows(["lora", "head"])] == ["head", "lora"]  # table order
    with pytest.raises(ValueError, match="unknown study row"):
        select_rows(["frozen-w7"])


def test_finished_runs_are_recognised_and_a_foreign_one_is_an_error(tmp_path):
    cfg = RunConfig(mode="head", out=str(tmp_path / "head" / "seed0"), **BASE)
    assert not is_finished(cfg)
    moved = RunConfig(mode="head", out="/elsewhere/head/seed0", cache_dir="/other", **BASE)
    write_json_atomic(tmp_path / "head" / "seed0" / "metrics.json", {"config": moved.__dict__, "scores": {}})
    assert is_finished(cfg)  # where a run was written does not make it another run
    # a moved study: its tuned-teacher row still names the study's own fine-tuned teacher
    row = "frozen-w5-tuned-teacher"
    [(_, tuned)] = [(r, c) for r, c in plan(select_rows([row]), [0], tmp_path, **BASE)]
    old = RunConfig(mode="frozen", window=5, out=f"/elsewhere/{row}/seed0",
                    teacher_finetuned="/elsewhere/teacher/seed0/teacher_finetuned", **BASE)
    write_json_atomic(tmp_path / row / "seed0" / "metrics.json", {"config": old.__dict__, "scores": {}})
    assert is_finished(tuned)
    foreign = RunConfig(mode="frozen", window=5, out=f"/elsewhere/{row}/seed0", teacher_finetuned="/models/t", **BASE)
    write_json_atomic(tmp_path / row / "seed0" / "metrics.json", {"config": foreign.__dict__, "scores": {}})
    with pytest.raises(ValueError, match="teacher_finetuned: '/models/t' != "):
        is_finished(tuned)
    other = RunConfig(mode="frozen", out=cfg.out, **BASE)
    with pytest.raises(ValueError, match=r"head/seed0/metrics.json: a run of another configuration \(mode"):
        is_finished(other)


def test_progress_lines():
    lines = []
    progress = Progress(total=4, to_train=3, log=lines.append)
    progress.start(2, "head seed0")
    progress.done(120.0)
    progress.start(3, "head seed1")
    assert lines == ["alad study: run 2 of 4: head seed0 (to train: 3, time left ~?)",
                     "alad study: run 3 of 4: head seed1 (to train: 2, time left ~4m)"]


def _study(out, data, corpus, rows, seeds=(0, 1), **kw):
    return run_study(out=out, seeds=seeds, rows=rows, log=lambda line: None, task_data=data,
                     corpus_fallback=corpus, **(BASE | kw))


def test_study_end_to_end_and_rerun_trains_nothing(tmp_path, monkeypatch, ner_task_data, corpus_texts):
    paths = _study(tmp_path, ner_task_data, corpus_texts, E2E_ROWS)
    for row in E2E_ROWS:
        for seed in (0,) if row == "teacher" else (0, 1):
            assert (tmp_path / row / f"seed{seed}" / "metrics.json").is_file()
    entries = json.loads(paths["claims_json"].read_text())
    assert {e["id"] for e in entries} == {"C2", "C4", "C5", "C9", "C10", "C11"}
    assert all(e["n_seeds"] == 2 for e in entries if e["metric"] != "speed_kept")
    assert [e["verdict"] for e in entries if e["metric"] == "adapter_flops_ratio"] == ["confirmed"]
    assert all(e["student"] == "minilm-l6:0" for e in entries)
    table = paths["study_md"].read_text()
    assert "| minilm-l6:0 | frozen-w5-factorised | Frozen + ALAd, factorised window | W5 |" in table
    assert "Teacher fine-tuned" in table and " ± " in table
    # one shared cache: W5, factorised W5 and W5 aligned to the tuned teacher train phase 1 once per seed,
    # joint W5 reuses frozen W5's
    assert len(list((tmp_path / ".alad_cache" / "adapters").glob("phase1-*[!k]"))) == 3 * 2  # not the .lock files
    tuned = json.loads((tmp_path / "frozen-w5-tuned-teacher" / "seed0" / "metrics.json").read_text())["config"]
    assert tuned["teacher_finetuned"] == str(tmp_path / "teacher" / "seed0" / "teacher_finetuned")
    assert json.loads((tmp_path / "joint-w5" / "seed1" / "metrics.json").read_text())["timings"]["phase1"] == 0.0

    before = {name: path.read_bytes() for name, path in paths.items()}
    monkeypatch.setattr(alad_kit.pipeline.run, "run", _no_training)
    again = _study(tmp_path, ner_task_data, corpus_texts, E2E_ROWS)
    assert {name: path.read_bytes() for name, path in again.items()} == before


def test_a_tuned_teacher_row_without_its_teacher_stops_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(alad_kit.pipeline.run, "run", _no_training)
    with pytest.raises(ValueError, match=r"teacher/seed0/teacher_finetuned: no fine-tuned teacher for row\(s\) "
                                         r"frozen-w5-tuned-teacher; run the 'teacher' row first"):
        _study(tmp_path, None, None, ["head", "frozen-w5-tuned-teacher"])


def _no_training(*args, **kwargs):
    raise AssertionError("a finished study trained again")


def test_killed_study_resumes_only_the_unfinished_run(tmp_path, monkeypatch, ner_task_data, corpus_texts):
    def kill(name, step):
        if name == "phase3" and step == 2 and (tmp_path / "head" / "seed0" / "metrics.json").is_file():
            raise TrainingInterrupted("simulated kill")

    with pytest.raises(TrainingInterrupted):
        _study(tmp_path, ner_task_data, corpus_texts, ["head"], callbacks=(kill,))
    assert not (tmp_path / "head" / "seed1" / "metrics.json").exists()
    calls, real_run = [], alad_kit.pipeline.run.run

    def spy(cfg, resume=False, **kwargs):
        calls.append((cfg.out, resume))
        return real_run(cfg, resume=resume, **kwargs)

    monkeypatch.setattr(alad_kit.pipeline.run, "run", spy)
    _study(tmp_path, ner_task_data, corpus_texts, ["head"])
    assert calls == [(str(tmp_path / "head" / "seed1"), True)]
    assert json.loads((tmp_path / "head" / "seed1" / "metrics.json").read_text())["seed"] == 1


def test_probed_layer_rows_need_the_study_probe(tmp_path, monkeypatch):
    monkeypatch.setattr(alad_kit.pipeline.run, "run", _no_training)
    with pytest.raises(ValueError, match=r"probe_layers.json: no layer probe for row\(s\) joint-w5-probed-layer; "
                                         r"make it with alad probe-layers"):
        _study(tmp_path, None, None, ["joint-w5-probed-layer"])
    from alad_kit.pipeline.study import _with_probe

    lines = []
    kept = _with_probe(select_rows(None), None, tmp_path, lines.append)  # the default set: left out, said once
    assert "frozen-w5-probed-layer" not in [r.name for r in kept] and len(kept) == len(ROW_NAMES) - 2
    assert len(lines) == 1 and "left out" in lines[0]
    (tmp_path / "probe_layers.json").write_text("{}")
    assert len(_with_probe(select_rows(None), None, tmp_path, lines.append)) == len(ROW_NAMES)


def test_the_report_of_a_folder_of_studies_rewrites_each_study_files_too(tmp_path):
    """Runs copied into a study folder leave its own claims.json behind unless the report over the folder above
    rewrites it: each study's files are what a report over that study alone writes."""
    for study, row, seed, score in [("pos-a", "frozen-w3", 0, 0.8), ("pos-a", "frozen-w3", 1, 0.82),
                                    ("pos-a", "frozen-w1", 0, 0.6), ("pos-a", "frozen-w1", 1, 0.63),
                                    ("pos-b", "frozen-w1", 0, 0.5)]:
        write_json_atomic(tmp_path / study / row / f"seed{seed}" / "metrics.json", {
            "task": "pos", "student": "minilm-l6", "mode": "frozen", "window": int(row[-1]), "seed": seed,
            "scores": {"f1": score}, "size_pct": 20.0})
    (tmp_path / "pos-a" / "claims.json").write_text("[]\n")  # stale: written before seed 1 came
    write_outputs(tmp_path)
    [entry] = json.loads((tmp_path / "pos-a" / "claims.json").read_text())
    assert (entry["n_seeds"], entry["runs"]["a"]) == (2, ["frozen-w3/seed0", "frozen-w3/seed1"])  # its own paths
    assert json.loads((tmp_path / "claims.json").read_text())[0]["runs"]["a"][0] == "pos-a/frozen-w3/seed0"
    assert json.loads((tmp_path / "pos-b" / "claims.json").read_text()) == []
    assert "frozen-w1" in (tmp_path / "pos-b" / "study.md").read_text()
    own = {p: p.read_text() for p in (tmp_path / "pos-a").glob("claims.*")}
    write_outputs(tmp_path / "pos-a")  # the report over that study alone writes the same files
    assert own == {p: p.read_text() for p in (tmp_path / "pos-a").glob("claims.*")}
