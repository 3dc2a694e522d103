"""load_committed: a notebook's runs copied from a committed study, matched by kind and seed, training nothing."""

import json
import math
from dataclasses import asdict
from pathlib import Path

import pytest

from alad_kit.core.config import RunConfig
from alad_kit.pipeline.committed import find_committed, load_committed, run_kind

STUDY = Path(__file__).resolve().parents[2] / "results" / "cpu-study" / "ner-minilm-2l"


def _study_run(study: Path, row: str, seed: int, f1: float, **fields) -> Path:
    cfg = RunConfig(task="ner", teacher="mpnet-base", student="minilm-l6", scale="cpu", seed=seed,
                    out=f"/elsewhere/{row}/seed{seed}", **fields)
    folder = study / row / f"seed{seed}"
    folder.mkdir(parents=True)
    metrics = {"task": "ner", "mode": cfg.mode, "window": cfg.window, "seed": seed, "scores": {"f1_overall": f1},
               "size_pct": 16.5, "timings": {"total": 60.0}, "config": json.loads(json.dumps(asdict(cfg)))}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "history.json").write_text(json.dumps({"phase3": [{"step": 1, "loss": 0.5}]}))
    return folder


def _notebook_cfg(tmp_path, name, **fields):
    return RunConfig(task="ner", teacher="minilm-l6", student="minilm-l6", scale="tiny", data_dir="wnut16",
                     out=str(tmp_path / "runs" / name), **fields)


def test_runs_match_by_kind_and_seed_not_by_scale_models_or_folders(tmp_path):
    study = tmp_path / "study"
    aligned = _study_run(study, "frozen-w3", 0, 0.33, mode="frozen", window=3)
    _study_run(study, "frozen-w3", 1, 0.34, mode="frozen", window=3)
    _study_run(study, "random-frozen-w3", 0, 0.35, mode="frozen", window=3, random_adapter=True)
    finetuned = _study_run(study, "finetune", 0, 0.38, mode="finetune", window=5)
    assert find_committed(study, _notebook_cfg(tmp_path, "frozen_w3", mode="frozen", window=3)) == aligned
    assert find_committed(study, _notebook_cfg(tmp_path, "frozen_w5", mode="frozen", window=5)) is None
    assert find_committed(study, _notebook_cfg(tmp_path, "ft", mode="finetune", window=3)) == finetuned  # no adapter
    assert run_kind({"task": "ner", "mode": "joint"})["window"] == 5  # a stored config lacking a field: its default


def test_load_copies_the_light_files_and_names_what_is_missing(tmp_path, caplog):
    study = tmp_path / "study"
    _study_run(study, "frozen-w3", 0, 0.33, mode="frozen", window=3)
    configs = [_notebook_cfg(tmp_path, "frozen_w3", mode="frozen", window=3),
               _notebook_cfg(tmp_path, "lora_alad_w3", mode="lora+alad", window=3)]
    rows = load_committed(configs, study)
    assert list(rows["run_dir"]) == [c.out for c in configs]
    assert rows.loc[0, "f1_overall"] == 0.33 and math.isnan(rows.loc[1, "f1_overall"])
    copied = Path(configs[0].out)
    assert sorted(p.name for p in copied.iterdir()) == ["history.json", "metrics.json"]
    assert (copied / "metrics.json").read_bytes() == (study / "frozen-w3" / "seed0" / "metrics.json").read_bytes()
    assert not Path(configs[1].out).exists()
    assert any("lora_alad_w3" in r.getMessage() and "no run of this kind" in r.getMessage() for r in caplog.records)
    with pytest.raises(FileNotFoundError, match="no committed study"):
        load_committed(configs, tmp_path / "nowhere")


@pytest.mark.skipif(not STUDY.is_dir(), reason="the committed study is not in this checkout")
def test_the_committed_ner_study_gives_notebook_05_its_rows(tmp_path):
    names = {"teacher_finetune": dict(mode="finetune", is_teacher_run=True), "student_finetune": dict(mode="finetune"),
             "frozen_w3": dict(mode="frozen", window=3), "joint_w3": dict(mode="joint", window=3)}
    rows = load_committed([_notebook_cfg(tmp_path, n, **f) for n, f in names.items()], STUDY)
    seed0 = {n: json.loads((STUDY / row / "seed0" / "metrics.json").read_text())["scores"]["f1_overall"]
             for n, row in zip(names, ("teacher", "finetune", "frozen-w3", "joint-w3"))}
    assert list(rows["f1_overall"]) == list(seed0.values())
    assert rows["f1_overall"].notna().all() and rows.loc[0, "f1_overall"] > rows.loc[1, "f1_overall"]  # the teacher
