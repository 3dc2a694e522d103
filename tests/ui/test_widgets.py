import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from alad_kit.adapter import AlignmentAdapter
from alad_kit.analysis import probes
from alad_kit.core import rundir
from alad_kit.ui import widgets

SENTENCES = [["Der", "Hund", "bellt"], ["Die", "Katze", "schläft", "hier"]]
TAGS = [["DET", "NOUN", "VERB"], ["DET", "NOUN", "VERB", "ADV"]]


def _probes_for_window(window):
    """Probe rows whose MSE encodes the window: error of window n, phase k, word j = n + k/10 + j/100."""
    frames = []
    for k, phase in enumerate(("before_phase1", "after_phase1", "after_phase2")):
        teacher = [np.zeros((len(s), 1)) for s in SENTENCES]
        adapted = [np.sqrt(window + k / 10 + np.arange(len(s))[:, None] / 100) for s in SENTENCES]
        frames.append(probes.probe_frame(SENTENCES, TAGS, adapted, teacher, phase))
    return pd.concat(frames, ignore_index=True)


def _umap_for_window(window):
    rows = []
    for phase in ("before_phase1", "after_phase2"):
        for source, dx in (("teacher", 0.0), ("adapted", float(window))):
            for i, token in enumerate(SENTENCES[0]):
                rows.append(
                    {"x": i + dx, "y": float(i), "source": source, "space": "teacher+adapted", "token": token,
                     "tag": TAGS[0][i], "sentence": 0, "index": i, "phase": phase}
                )  # fmt: skip
    return pd.DataFrame(rows)


def _typed(sentence, window):
    words = sentence.split()
    teacher = [np.zeros((len(words), 1))]
    return probes.probe_frame(
        [words], None, [np.full((len(words), 1), np.sqrt(window * 10.0))], teacher, "after_phase3"
    )


@pytest.fixture
def data():
    return widgets.ExplorerData(
        probes={w: _probes_for_window(w) for w in (1, 3, 5)},
        umaps={w: _umap_for_window(w) for w in (1, 3, 5)},
        scores={1: {"accuracy": 0.8}, 3: {"accuracy": 0.85}, 5: {"accuracy": 0.9}},
        embed=_typed,
        title="pos · toy",
    )


@pytest.fixture(params=[False, True], ids=["plain-figures", "figure-widgets"])
def explorer(request, data):
    if request.param:
        pytest.importorskip("anywidget")  # plotly's FigureWidget needs it
    return widgets.WindowExplorer(data, static=True, live_figures=request.param)


def _heat_z(explorer):
    return np.asarray(explorer.heatmap_figure.data[0].z, dtype=float)


def test_initial_state_shows_the_largest_window(explorer):
    assert explorer.window_slider.options == (1, 3, 5) and explorer.window == 5
    assert explorer.phase == "after_phase2"
    assert [label for label, _ in explorer.phase_buttons.options] == [
        "before phase 1",
        "after phase 1",
        "after phase 2",
    ]
    np.testing.assert_allclose(_heat_z(explorer)[0], [5.0, 5.01, 5.02])
    assert list(explorer.heatmap_figure.layout.xaxis.ticktext) == ["Der", "Hund", "bellt"]
    assert "0.9" in explorer.scores_html.value and "window n=5" in explorer.scores_html.value


def test_slider_switches_every_view_to_that_window(explorer):
    explorer.window_slider.value = 3
    np.testing.assert_allclose(_heat_z(explorer), [[3.0, 3.01, 3.02], [3.1, 3.11, 3.12], [3.2, 3.21, 3.22]])
    adapted = next(t for t in explorer.umap_figure.data if t.name == "adapted")
    assert list(adapted.x) == [3.0, 4.0, 5.0]
    assert "0.85" in explorer.scores_html.value and "3.21" in explorer.scores_html.value  # mean MSE, phase 2
    assert "n=3" in explorer.heatmap_figure.layout.title.text


def test_phase_and_sentence_controls(explorer):
    explorer.phase_buttons.value = "after_phase1"
    assert explorer.umap_figure.layout.title.text.startswith("No UMAP")  # window 5 has no phase-1 map
    explorer.phase_buttons.value = "before_phase1"
    assert any(t.name == "teacher–adapted" for t in explorer.umap_figure.data)
    explorer.sentence_menu.value = 1
    assert list(explorer.heatmap_figure.layout.xaxis.ticktext) == ["Die", "Katze", "schläft", "hier"]


def test_typed_sentence_replaces_the_heatmap(explorer):
    explorer.window_slider.value = 1
    explorer.text_box.value = "ganz neue Wörter hier"
    assert list(explorer.heatmap_figure.layout.xaxis.ticktext) == ["ganz", "neue", "Wörter", "hier"]
    assert list(explorer.heatmap_figure.data[0].y) == ["after phase 3"]
    np.testing.assert_allclose(_heat_z(explorer), 10.0)
    explorer.window_slider.value = 5  # the typed sentence stays, probed with the other window
    np.testing.assert_allclose(_heat_z(explorer), 50.0)
    explorer.text_box.value = ""
    assert list(explorer.heatmap_figure.layout.xaxis.ticktext) == ["Der", "Hund", "bellt"]


def _assert_views_match_controls(explorer):
    """Every view shows what the controls say: window, phase, probe sentence (issue 22: no view lags)."""
    state = explorer.controls()
    assert explorer.shown == state
    window, sentence = state["window"], state["sentence"]
    assert f"n={window}" in explorer.heatmap_figure.layout.title.text
    assert list(explorer.heatmap_figure.layout.xaxis.ticktext) == SENTENCES[sentence]
    np.testing.assert_allclose(_heat_z(explorer)[0][0], window)  # first phase, first word: error = window
    adapted = [t for t in explorer.umap_figure.data if t.name == "adapted"]
    if state["phase"] in ("before_phase1", "after_phase2"):  # the phases with a UMAP
        assert list(adapted[0].x)[0] == window and f"n={window}" in explorer.umap_figure.layout.title.text
    else:
        assert not adapted and explorer.umap_figure.layout.title.text.startswith("No UMAP")
    assert f"window n={window}" in explorer.scores_html.value


def test_views_follow_the_controls_in_any_order(explorer):
    moves = [("sentence_menu", 1), ("window_slider", 3), ("phase_buttons", "before_phase1"), ("window_slider", 1),
             ("sentence_menu", 0), ("phase_buttons", "after_phase1"), ("sentence_menu", 1), ("window_slider", 5),
             ("phase_buttons", "after_phase2")]
    _assert_views_match_controls(explorer)
    for control, value in moves:
        getattr(explorer, control).value = value
        _assert_views_match_controls(explorer)
    assert explorer.controls() == {"window": 5, "phase": "after_phase2", "sentence": 1, "text": ""}


@pytest.mark.parametrize("live", [False, True], ids=["plain-figures", "figure-widgets"])
def test_display_rebuilds_the_views_from_the_current_controls(data, monkeypatch, live):
    """A front end that lost the widgets (page reload: JupyterLab 4.6 in Chromium showed "widget model not found")
    gets all-new ones on the next display, controls included, in the state the reader left them."""
    if live:
        pytest.importorskip("anywidget")
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs: shown.extend(objs))
    explorer = widgets.WindowExplorer(data, static=False, live_figures=live)
    explorer.window_slider.value, explorer.sentence_menu.value, explorer.phase_buttons.value = 3, 1, "before_phase1"
    old_views, slider = (explorer.umap_figure, explorer.heatmap_figure), explorer.window_slider
    explorer.display()
    assert shown == [explorer.widget] and explorer.window_slider is not slider and slider.comm is None
    assert explorer.controls() == {"window": 3, "phase": "before_phase1", "sentence": 1, "text": ""}
    assert explorer.widget.children[1].children == (explorer.window_slider, explorer.phase_buttons)
    assert explorer.umap_figure is not old_views[0] and explorer.heatmap_figure is not old_views[1]
    assert explorer.widget.children[-2:] == tuple(explorer._views)
    _assert_views_match_controls(explorer)
    explorer.window_slider.value = 1  # the observers drive the new views
    _assert_views_match_controls(explorer)
    if live:
        assert old_views[0].comm is None and old_views[1].comm is None  # the lost views are closed


def test_figures_are_static_copies(explorer):
    figs = explorer.figures()
    assert [type(f) for f in figs] == [go.Figure, go.Figure]
    np.testing.assert_allclose(np.asarray(figs[1].data[0].z, dtype=float)[0], [5.0, 5.01, 5.02])


def test_display_static_without_kernel(data, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs: shown.extend(objs))
    explorer = widgets.WindowExplorer(data, live_figures=False)  # no kernel here -> static
    assert explorer.static
    explorer.display()
    assert [type(o).__name__ for o in shown] == ["HTML", "Figure", "Figure"]
    monkeypatch.setenv(widgets.STATIC_ENV, "1")
    assert widgets.WindowExplorer(data, static=None, live_figures=False).static


def test_without_prober_the_text_box_is_off(data):
    bare = widgets.ExplorerData(probes=data.probes)
    explorer = widgets.WindowExplorer(bare, static=True, live_figures=False)
    assert explorer.text_box.disabled
    explorer.text_box.value = "anything"  # still safe: falls back to the chosen probe sentence
    assert list(explorer.heatmap_figure.layout.xaxis.ticktext) == ["Der", "Hund", "bellt"]
    assert "no probe of the typed sentence" in explorer.scores_html.value
    assert explorer.umap_figure.layout.title.text.startswith("No UMAP")


def test_explorer_data_validation():
    with pytest.raises(ValueError, match="no probe frames"):
        widgets.ExplorerData(probes={})
    with pytest.raises(ValueError, match="lacks column"):
        widgets.ExplorerData(probes={1: pd.DataFrame({"token": []})})
    with pytest.raises(ValueError, match="without probe frames"):
        widgets.ExplorerData(probes={1: _probes_for_window(1)}, umaps={3: _umap_for_window(3)})


def test_from_runs_reads_run_directories(tmp_path):
    for window, seed in ((1, 0), (5, 0), (5, 1)):
        run = tmp_path / f"w{window}-s{seed}"
        run.mkdir()
        metrics = {"task": "pos", "student": "toy", "mode": "frozen", "window": window, "seed": seed,
                   "scores": {"accuracy": window / 10, "per_type": {}}}  # fmt: skip
        (run / "metrics.json").write_text(json.dumps(metrics))
        probes.save_run_frame(_probes_for_window(window + seed), run)
    probes.save_run_frame(_umap_for_window(1), tmp_path / "w1-s0", rundir.UMAP_STEM, fmt="parquet")
    # a run that wrote sub-word probes without tags, as alad_kit.pipeline.run does
    run = tmp_path / "w3-s0"
    run.mkdir()
    (run / "metrics.json").write_text(
        json.dumps({"task": "pos", "mode": "frozen", "window": 3, "scores": {}})
    )
    _probes_for_window(3).drop(columns="tag").to_csv(run / "probes.csv", index=False)
    nowindow = tmp_path / "finetune"
    nowindow.mkdir()
    (nowindow / "metrics.json").write_text(json.dumps({"task": "pos", "mode": "finetune", "scores": {}}))
    with pytest.warns(UserWarning, match="several runs with window 5"):
        data = widgets.ExplorerData.from_runs(tmp_path, task="pos")
    assert data.windows == [1, 3, 5] and list(data.umaps) == [1]
    assert data.scores == {1: {"accuracy": 0.1}, 3: {}, 5: {"accuracy": 0.5}}
    assert (data.probes[3]["tag"] == "").all()
    explorer = widgets.WindowExplorer(data, static=True, live_figures=False)
    explorer.window_slider.value = 3
    assert list(explorer.heatmap_figure.layout.xaxis.ticktext) == ["Der", "Hund", "bellt"]
    assert data.probes[5]["mse"].min() == pytest.approx(5.0)  # seed 0 (lowest) wins
    only_seed1 = widgets.ExplorerData.from_runs([tmp_path / "w5-s1"], seed=1)
    assert only_seed1.windows == [5] and only_seed1.probes[5]["mse"].min() == pytest.approx(6.0)
    with pytest.raises(ValueError, match="no run with a window"):
        widgets.ExplorerData.from_runs(tmp_path, task="ner")


def test_sentence_prober_with_real_minilm():
    from transformers import AutoModel, AutoTokenizer

    from alad_kit.models.offline import offline_model_dir

    model, tok = AutoModel.from_pretrained(offline_model_dir("minilm-l6")), AutoTokenizer.from_pretrained(offline_model_dir("minilm-l6"))
    torch.manual_seed(0)
    adapters = {1: AlignmentAdapter(384, 384, 1, 16), 3: {"a": AlignmentAdapter(384, 384, 3, 16),
                                                         "b": AlignmentAdapter(384, 384, 3, 16)}}  # fmt: skip
    prober = widgets.make_sentence_prober(model, tok, model, tok, adapters)
    rows = prober("the quick brown fox", 1)
    assert list(rows["token"]) == ["the", "quick", "brown", "fox"] and set(rows["phase"]) == {"after_phase3"}
    assert prober(" the quick brown fox ", 1) is rows  # cached
    three = prober("the quick brown fox", 3)
    assert sorted(set(three["phase"])) == ["a", "b"] and len(three) == 8
    assert not np.allclose(three["mse"].to_numpy()[:4], rows["mse"].to_numpy())
