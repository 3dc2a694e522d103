"""Every figure shows every row of its data, with human labels and rounded numbers (issue 22).

Each figure function is rendered on data with many rows (11 table rows with LoRA and LoRA + ALAd, 35 scores,
9 study rows, 3 windows x 4 phases); the tests read the figure's own data (table cells, trace names, axis
labels) and its height, the way a browser gets them.
"""

import json
import re

import numpy as np
import pandas as pd
import pytest
from test_claims import write_run as write_study_run  # same folder: pytest puts it on sys.path
from test_table import write_run

from alad_kit.analysis import labels, probes, report, viz
from alad_kit.analysis.study_view import claims_frame, seed_figure, seed_scores
from alad_kit.analysis.sweep_table import write_sweep_table
from alad_kit.analysis.table import attach_speed, collect_runs, results_table

LONG_DECIMALS = re.compile(r"\d\.\d{3,}")  # a number with more than two decimals
ROW_PX = 26  # the smallest row height a go.Table of ours may use


def _table_cells(fig):
    table = fig.data[0]
    return list(table.header.values), [list(column) for column in table.cells.values]


def _fits(fig, n_rows):
    """The figure is tall enough for its header and every row (else the page clips the last ones)."""
    return fig.layout.height >= ROW_PX * (n_rows + 1)


@pytest.fixture
def table_runs(tmp_path):
    """Eleven Table-1 rows for a student cut to layers 0-1, LoRA and LoRA + ALAd included."""
    root = tmp_path / "runs"
    cut = {"student": "minilm-l6", "student_layers": [0, 1], "task": "ner",
           "scores": {"f1_overall": 0.123456, "f1_macro": 0.0987654}, "size_pct": 16.521210320341854}
    write_run(root, "teacher-ft", **cut | {"mode": "finetune", "window": None, "is_teacher": True,
                                           "size_pct": 100.0})
    write_run(root, "teacher-head", **cut | {"mode": "head", "window": None, "is_teacher": True, "size_pct": 100.0})
    write_run(root, "student-ft", **cut | {"mode": "finetune", "window": None})
    write_run(root, "student-head", **cut | {"mode": "head", "window": None})
    for w in (1, 3, 5):
        write_run(root, f"frozen-w{w}", **cut | {"mode": "frozen", "window": w})
    write_run(root, "joint-w3", **cut | {"mode": "joint", "window": 3})
    write_run(root, "lora", **cut | {"mode": "lora", "window": None})
    for w in (1, 3):
        write_run(root, f"lora-alad-w{w}", **cut | {"mode": "lora+alad", "window": w})
    return root


BENCH = {"teacher": {"name": "mpnet-base"}, "rows": [
    {"device": "cpu", "model": "mpnet-base", "window": None, "spd": 1.0},
    {"device": "cpu", "model": "minilm-l6:0,1", "window": None, "spd": 20.787029179167796},
    *({"device": "cpu", "model": "minilm-l6:0,1", "window": w, "kind": "dense", "spd": 16.0 - w} for w in (1, 3, 5)),
]}


def test_results_table_figure_shows_every_row_rounded_with_spd_and_the_students_layers(table_runs):
    runs = attach_speed(collect_runs(table_runs), BENCH)
    shown = results_table(runs)
    assert len(shown) == 11
    fig = viz.results_table_figure(shown, title="T1")
    headers, columns = _table_cells(fig)
    cells = dict(zip(headers, columns))
    assert cells["Setting"] == list(shown["Setting"])  # every row, in order
    assert {"LoRA", "LoRA + ALAd", "Teacher fine-tuned", "Jointly fine-tuned + ALAd"} <= set(cells["Setting"])
    assert cells["W"] == ["", "", "", "", "W1", "W3", "W5", "W3", "", "W1", "W3"]
    assert set(cells["Model"]) == {"mpnet-base", "minilm-l6 (layers 0–1)"}
    assert cells["Setting"][:2] == ["Teacher fine-tuned", "Teacher frozen, head only"]  # the teacher's rows first
    assert cells["Spd"][:5] == ["1.00", "1.00", "20.79", "20.79", "15.00"]  # filled from the bench
    assert cells["Spd"][8] == "20.79" and cells["Spd"][9] == "15.00"  # LoRA merges into the student
    assert cells["Sz"][2] == "16.5" and cells["NER F1_O"][0] == "12.35"
    assert not [c for column in columns for c in column if LONG_DECIMALS.search(c)]
    assert _fits(fig, 11)
    widths = dict(zip(headers, fig.data[0].columnwidth))  # wide enough not to wrap "Jointly fine-tuned + ALAd"
    assert widths["Setting"] >= len("Jointly fine-tuned + ALAd") and widths["W"] < widths["Setting"]


def test_attach_speed_leaves_runs_of_another_teacher_blank(table_runs):
    other = dict(BENCH, teacher={"name": "bert-large"})
    assert attach_speed(collect_runs(table_runs), other)["spd"].isna().all()


def test_scores_table_of_a_report_lists_every_per_type_score_rounded(tmp_path):
    per_type = {f"Type{i:02d}/sub": 1 / (i + 3) for i in range(33)}
    run = tmp_path / "run"
    run.mkdir()
    metrics = {"task": "ner", "teacher": "mpnet-base", "student": "minilm-l6", "student_layers": [0, 1],
               "mode": "frozen", "window": 3, "seed": 0, "scale": "cpu", "is_teacher": False,
               "size_pct": 16.521210320341854,
               "scores": {"f1_overall": 0.2829629629629629, "f1_macro": 0.18651209211717817, "per_type": per_type}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    title, fig = report.run_figures(run)[0]
    headers, (names, values) = _table_cells(fig)
    assert title == "Scores" and len(names) == 35
    assert [f"per_type.{k}" for k in per_type] == names[2:]
    assert all(len(v.replace(".", "").lstrip("0")) <= 4 for v in values)  # 4 significant digits at most
    assert _fits(fig, 35)
    page = report.render_report(run)
    assert "16.521210320341854" not in page and "16.5 % of the teacher" in page
    assert "minilm-l6 (layers 0–1)" in page and "<td>W3</td>" in page
    assert "ALAd run: ner · minilm-l6 (layers 0–1) · frozen · W3" in page


def test_seed_figure_has_every_study_row(tmp_path):
    rows = [f"row-{i}" for i in range(9)] + ["lora", "lora-alad-w5"]
    for i, row in enumerate(rows):
        for seed in range(2):
            write_study_run(tmp_path / "ner-2l", row, seed, 0.1 + i / 100 + seed / 1000)
    fig = seed_figure(seed_scores(tmp_path))
    assert sorted(fig.layout.yaxis.categoryarray) == sorted(rows)
    assert set(fig.data[0].y) == set(rows) and fig.layout.height >= 28 * len(rows)


def test_claims_frame_names_the_student_with_its_layers(tmp_path):
    (tmp_path / "claims.json").write_text(json.dumps(
        [{"id": f"C{i}", "student": "minilm-l6:0,1", "verdict": "inconclusive"} for i in range(70)]))
    frame = claims_frame(tmp_path)
    assert len(frame) == 70 and set(frame["student"]) == {"minilm-l6 (layers 0–1)"}


def _probe_rows(window):
    words, tags = [["Der", "Hund", "bellt", "laut"]], [["DET", "NOUN", "VERB", "ADV"]]
    teacher = [np.zeros((4, 1))]
    return pd.concat([probes.probe_frame(words, tags, [np.full((4, 1), window + k / 10)], teacher, phase)
                      for k, phase in enumerate(probes.PHASES)], ignore_index=True)


def test_probe_figures_use_human_phase_and_window_labels():
    frames = {w: _probe_rows(w) for w in (1, 3, 5)}
    human = [labels.phase_label(p) for p in probes.PHASES]
    assert human == ["before phase 1", "after phase 1", "after phase 2", "after phase 3"]
    by_window = viz.alignment_by_window(frames)
    assert [t.name for t in by_window.data] == ["W1", "W3", "W5"]
    assert all(list(t.x) == human for t in by_window.data)
    assert list(by_window.data[1].y) == pytest.approx([(3 + k / 10) ** 2 for k in range(4)])
    heat = viz.mse_heatmap(frames[3])
    assert list(heat.data[0].y) == human and list(heat.layout.xaxis.ticktext) == ["Der", "Hund", "bellt", "laut"]
    bars = viz.mse_by_tag(frames[3])
    assert [t.name for t in bars.data] == human and list(bars.data[0].x) == ["ADV", "DET", "NOUN", "VERB"]
    align = viz.alignment_by_phase({p: {"mse": 0.123456, "cosine": 0.5} for p in reversed(probes.PHASES)})
    assert list(align.data[0].x) == human and align.data[0].text[0] == "0.1235"
    loss = viz.loss_curves({"phase1": [[0, 1.0]], "phase2": [[0, 0.5]], "phase3": [[0, 2.0]]})
    assert [a.text for a in loss.layout.annotations] == ["phase 1", "phase 2", "phase 3"]


def test_sweep_table_shows_windows_and_epochs_as_whole_numbers(tmp_path):
    for i, (mode, window) in enumerate((("head", None), ("frozen", 5), ("frozen", 3))):
        path = tmp_path / f"r{i}" / "metrics.json"
        path.parent.mkdir()
        path.write_text(json.dumps({
            "task": "ner", "mode": mode, "window": window, "phase3_lr": {"head": 1e-3 * (i + 1)},
            "selection": {"metric": "f1_overall", "best_epoch": 2, "validation": [[1, 0.1], [2, 0.123456]]},
            "phases": {"phase3": {"steps": 40}}, "scores": {"f1_overall": 0.2}}))
    md = write_sweep_table(tmp_path, "head")["md"].read_text()
    lines = [line for line in md.splitlines() if re.match(r"\| r\d ", line)]
    assert len(lines) == 3
    assert "| W5 |" in md and "| W3 |" in md and "nan" not in md.lower() and "5.0" not in md
    assert all("| 2 | 12.35 | 2 | 40 |" in line for line in lines)


@pytest.mark.parametrize("value, text", [(3, "W3"), (3.0, "W3"), ("5", "W5"), (None, ""), (float("nan"), ""),
                                         (pd.NA, ""), (np.int64(1), "W1")])
def test_window_label(value, text):
    assert labels.window_label(value) == text


def test_window_label_refuses_a_fraction():
    with pytest.raises(ValueError, match="whole number"):
        labels.window_label(2.5)


@pytest.mark.parametrize("model, layers, text", [
    ("minilm-l6:0,1", None, "minilm-l6 (layers 0–1)"), ("minilm-l6", [0, 1], "minilm-l6 (layers 0–1)"),
    ("minilm-l6", (0,), "minilm-l6 (layer 0)"), ("minilm-l6:0,2,5", None, "minilm-l6 (layers 0, 2, 5)"),
    ("minilm-l6", None, "minilm-l6"), ("/students/asc_mpnet4", None, "asc_mpnet4"), (None, None, "?"),
    ("org/model:v2", None, "model:v2"),
])
def test_model_label(model, layers, text):
    assert labels.model_label(model, layers) == text


@pytest.mark.parametrize("value, text", [(16.521210320341854, "16.52"), (1.0, "1"), (None, ""),
                                         (float("nan"), ""), ("82.10 ± 1.00", "82.10 ± 1.00"), (np.float32(0.5), "0.50")])
def test_number_text(value, text):
    assert labels.number_text(value) == text
