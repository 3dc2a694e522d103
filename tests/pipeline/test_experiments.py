import json
from pathlib import Path

import pytest

from alad_kit.core.config import RunConfig
from alad_kit.core.runkey import run_key
from alad_kit.pipeline import experiments


def _cfg(tmp_path, name="run", **kw):
    base = dict(task="ner", teacher="minilm-l6", student="minilm-l6", student_layers=(0,), mode="frozen", window=3)
    return RunConfig(out=str(tmp_path / name), cache_dir=str(tmp_path / "cache"), **(base | kw))


def _finish(cfg, **metrics):
    """Write a metrics.json as run() does (config stored without ``extra``)."""
    body = {"task": cfg.task, "mode": cfg.mode, "window": cfg.window, "scores": {"f1_overall": 0.5},
            "config": run_key(cfg) | {"out": cfg.out, "cache_dir": cfg.cache_dir}} | metrics
    path = Path(cfg.out) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))
    return body


@pytest.fixture
def no_run(monkeypatch):
    """run() replaced by a recorder: tests never train."""
    calls = []

    def fake_run(cfg, **kw):
        calls.append(cfg)
        return {"task": cfg.task, "mode": cfg.mode, "window": cfg.window, "scores": {"f1_overall": 0.25},
                "timings": {"total": 60.0}, "config": run_key(cfg)}

    monkeypatch.setattr("alad_kit.pipeline.run.run", fake_run)
    return calls


# ---- env_path --------------------------------------------------------------------------------------
def test_env_path_unset_gives_default(monkeypatch):
    monkeypatch.delenv("ALAD_TEST_PATH", raising=False)
    assert experiments.env_path("ALAD_TEST_PATH", default="wnut16") == "wnut16"
    monkeypatch.setenv("ALAD_TEST_PATH", "")
    assert experiments.env_path("ALAD_TEST_PATH") is None


def test_env_path_resolves_relative_values_against_parents(monkeypatch, tmp_path):
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "repo" / "notebooks").mkdir(parents=True)
    monkeypatch.setenv("ALAD_TEST_PATH", "../shared/data")
    monkeypatch.chdir(tmp_path / "repo")  # as CI sees it: repo root
    assert experiments.env_path("ALAD_TEST_PATH") == str((tmp_path / "shared" / "data").resolve())
    monkeypatch.chdir(tmp_path / "repo" / "notebooks")  # as a notebook kernel sees it
    assert experiments.env_path("ALAD_TEST_PATH") == str((tmp_path / "shared" / "data").resolve())


def test_env_path_missing_names_the_places_tried(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALAD_TEST_PATH", "nowhere/data")
    with pytest.raises(FileNotFoundError, match="ALAD_TEST_PATH='nowhere/data' exists nowhere; tried"):
        experiments.env_path("ALAD_TEST_PATH")
    monkeypatch.setenv("ALAD_TEST_PATH", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        experiments.env_path("ALAD_TEST_PATH")


# ---- reuse -----------------------------------------------------------------------------------------
def test_run_or_reuse_reads_back_or_runs(tmp_path, no_run):
    cfg = _cfg(tmp_path)
    written = _finish(cfg)
    assert experiments.run_or_reuse(cfg) == written and no_run == []
    experiments.run_or_reuse(cfg, rerun=True)
    other = _cfg(tmp_path, window=1)  # same directory, different configuration: runs again
    assert experiments.run_or_reuse(other)["window"] == 1
    assert no_run == [cfg, other]
    (Path(cfg.out) / "metrics.json").write_text("{not json")  # a damaged record is redone, never an error
    experiments.run_or_reuse(cfg)
    assert no_run == [cfg, other, cfg]


def test_metrics_row_flattens_scores_alignment_and_time():
    metrics = {
        "task": "ner", "student": "minilm-l6", "student_layers": [0, 1], "mode": "frozen", "window": 3, "seed": 0,
        "scale": "smoke", "scores": {"f1_overall": 0.5, "per_type": {"person": 0.1}, "flag": True},
        "size_pct": 40.0, "alignment": {"after_phase1": {"mse": 0.2, "cosine": 0.7}}, "timings": {"total": 90.0},
    }
    row = experiments.metrics_row(metrics, run_dir="runs/x")
    assert row["run_dir"] == "runs/x" and row["student_layers"] == "0,1"
    assert row["f1_overall"] == 0.5 and "per_type" not in row and "flag" not in row
    assert row["mse_after_phase1"] == 0.2 and row["cosine_after_phase1"] == 0.7
    assert row["minutes"] == 1.5 and row["size_pct"] == 40.0


def test_sweep_keeps_order_and_refuses_shared_out(tmp_path, no_run):
    first, second = _cfg(tmp_path, "w1", window=1), _cfg(tmp_path, "w3")
    _finish(second)
    table = experiments.sweep([first, second])
    assert list(table["window"]) == [1, 3] and list(table["run_dir"]) == [first.out, second.out]
    assert no_run == [first]  # the finished one was reused
    with pytest.raises(ValueError, match="same out directory"):
        experiments.sweep([first, _cfg(tmp_path, "w1", window=5)])


def test_sweep_shows_an_outer_bar_over_the_runs_that_stays(tmp_path, no_run, capsys, caplog, monkeypatch):
    import logging

    monkeypatch.setenv("ALAD_PROGRESS", "bar")  # captured stderr is no terminal: it would get lines, not a bar
    configs = [_cfg(tmp_path, f"w{w}", window=w) for w in (1, 3, 5)]
    with caplog.at_level(logging.INFO, logger="alad_kit"):
        experiments.sweep(configs)
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]  # leave=True: the last state stays
    assert bar.startswith("sweep: 100%") and "3/3" in bar
    assert [r.getMessage() for r in caplog.records if "sweep:" in r.getMessage()][1].startswith("sweep: run 2 of 3")
