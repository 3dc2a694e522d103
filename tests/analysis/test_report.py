import json

import numpy as np
import pandas as pd
import pytest

from alad_kit.analysis import probes, report
from alad_kit.core import rundir

PLOTLY_BANNER = "* plotly.js v"  # first line of the inlined plotly.js bundle
FIGURE_DIV = 'class="plotly-graph-div"'


def _metrics(**overrides):
    metrics = {
        "task": "pos",
        "teacher": "mpnet-base",
        "student": "minilm-l6",
        "mode": "frozen",
        "window": 3,
        "seed": 0,
        "scale": "smoke",
        "scores": {"accuracy": 0.91, "f1": 0.9},
        "params": {},
        "size_pct": 25.0,
        "alignment": {
            "before_phase1": {"mse": 0.9, "cosine": 0.01},
            "after_phase1": {"mse": 0.3, "cosine": 0.7},
            "after_phase2": {"mse": 0.2, "cosine": 0.8},
        },
        "timings": {},
        "versions": {},
        "is_teacher": False,
    }
    return {**metrics, **overrides}


def _full_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(_metrics()))
    (run / "history.json").write_text(
        json.dumps({"phase1": [[0, 1.0], [1, 0.5]], "phase3": [[0, 2.0], [1, 1.5]]})
    )
    rng = np.random.default_rng(0)
    tokens, tags = [["Der", "Hund", "bellt"], ["Ja"]], [["DET", "NOUN", "VERB"], ["INTJ"]]
    teacher = [rng.normal(size=(3, 4)), rng.normal(size=(1, 4))]
    frames = [
        probes.probe_frame(tokens, tags, [t + s * rng.normal(size=t.shape) for t in teacher], teacher, phase)
        for phase, s in (("before_phase1", 1.0), ("after_phase2", 0.1), ("after_phase3", 0.05))
    ]
    probes.save_run_frame(pd.concat(frames, ignore_index=True), run)
    umap_rows = pd.DataFrame(
        {
            "x": [0.0, 1.0, 0.1, 1.1],
            "y": [0.0, 1.0, 0.0, 1.0],
            "source": ["teacher", "teacher", "adapted", "adapted"],
            "space": "teacher+adapted",
            "token": ["Der", "Hund"] * 2,
            "tag": ["DET", "NOUN"] * 2,
            "sentence": 0,
            "index": [0, 1, 0, 1],
            "phase": "after_phase3",
        }
    )
    probes.save_run_frame(umap_rows, run, rundir.UMAP_STEM, fmt="csv")
    return run


def test_report_inlines_plotly_once_and_has_every_figure(tmp_path):
    run = _full_run(tmp_path)
    path = report.write_report(run)
    assert path == run / "report.html"
    page = path.read_text()
    assert page.count(PLOTLY_BANNER) == 1
    titles = [title for title, _ in report.run_figures(run)]
    assert titles == [
        "Scores",
        "Alignment with the teacher, by phase",
        "Training loss",
        "Per-token MSE, probe sentence 0",
        "Per-token MSE, probe sentence 1",
        "MSE by tag",
        "Word vectors (UMAP), after phase 3",
    ]
    assert page.count(FIGURE_DIV) == len(titles)
    assert "<h1>ALAd run: pos · minilm-l6 · frozen · W3</h1>" in page
    assert 'src="http' not in page  # self-contained: no CDN script


def test_report_alignment_adds_phase3_from_probes(tmp_path):
    run = _full_run(tmp_path)
    alignment_fig = dict(report.run_figures(run))["Alignment with the teacher, by phase"]
    assert list(alignment_fig.data[0].x) == [
        "before phase 1",
        "after phase 1",
        "after phase 2",
        "after phase 3",
    ]
    assert alignment_fig.data[0].y[1] == 0.3  # metrics.json values win over probe means


def test_report_of_a_bare_run(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(_metrics(mode="finetune", window=None, alignment={})))
    page = report.write_report(run, tmp_path / "elsewhere" / "r.html").read_text()
    assert page.count(PLOTLY_BANNER) == 1 and page.count(FIGURE_DIV) == 1
    assert "ALAd run: pos · minilm-l6 · finetune</h1>" in page


def test_report_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        report.write_report(tmp_path)
    (tmp_path / "metrics.json").write_text("{broken")
    with pytest.raises(ValueError, match="invalid JSON"):
        report.write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_report_of_a_run_with_untagged_subword_probes(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(_metrics()))
    rows = pd.DataFrame(
        {"sentence": 0, "position": [1, 2], "token": ["wonder", "##ful"], "phase": "after_phase3", "mse": [0.1, 0.2],
         "cosine": [0.9, 0.8]}
    )  # fmt: skip
    rows.to_csv(run / "probes.csv", index=False)  # what alad_kit.pipeline.run writes: no tag column
    titles = [title for title, _ in report.run_figures(run)]
    assert titles == ["Scores", "Alignment with the teacher, by phase", "Per-token MSE, probe sentence 0"]
    heatmap = report.run_figures(run)[2][1]
    assert list(heatmap.layout.xaxis.ticktext) == ["wonder", "##ful"]


def test_report_shows_validation_curve_and_umap_before_next_to_after(tmp_path):
    run = _full_run(tmp_path)
    selection = {"metric": "accuracy", "best_epoch": 2, "validation": [[1, 0.5], [2, 0.7]]}
    (run / "metrics.json").write_text(json.dumps(_metrics(selection=selection)))
    umap = probes.load_run_frame(run, rundir.UMAP_STEM)
    both = pd.concat([umap.assign(phase=p) for p in ("before_phase1", "after_phase1", "after_phase3")])
    probes.save_run_frame(both, run, rundir.UMAP_STEM, fmt="csv")
    figures = dict(report.run_figures(run))
    assert list(figures["Validation score per epoch (phase 3)"].data[0].y) == [0.5, 0.7]
    side_by_side = figures["Word vectors (UMAP), before and after alignment"]
    assert [a.text for a in side_by_side.layout.annotations][0].startswith("before phase 1")
    assert "Word vectors (UMAP), after phase 3" in figures


def test_report_is_readable_by_the_group_as_the_umask_allows(tmp_path):
    import os
    import stat

    run = _full_run(tmp_path)
    old = os.umask(0o027)
    try:
        mode = stat.S_IMODE(report.write_report(run).stat().st_mode)
    finally:
        os.umask(old)
    assert mode == 0o640  # 0666 & ~umask, not mkstemp's 0600
