import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from alad_kit.analysis import probes, viz


def _umap_frame():
    """Two words in the teacher space (teacher + adapted) and their student points in their own space."""
    rows = []
    for source, space, dx in (("teacher", "teacher+adapted", 0.0), ("adapted", "teacher+adapted", 0.5)):
        rows += [
            {
                "x": 1.0 + dx,
                "y": 2.0,
                "source": source,
                "space": space,
                "token": "Haus",
                "tag": "NOUN",
                "index": 0,
            },
            {
                "x": 5.0 + dx,
                "y": 6.0,
                "source": source,
                "space": space,
                "token": "und",
                "tag": "CCONJ",
                "index": 1,
            },
        ]
    rows += [
        {
            "x": -1.0,
            "y": 0.0,
            "source": "student",
            "space": "student",
            "token": "Haus",
            "tag": "NOUN",
            "index": 0,
        },
        {
            "x": -2.0,
            "y": 0.0,
            "source": "student",
            "space": "student",
            "token": "und",
            "tag": "CCONJ",
            "index": 1,
        },
    ]
    return pd.DataFrame(rows)


def _probe_rows():
    """One sentence "the cat the" (a repeated word) in two phases, plus a second sentence."""
    tokens = [["the", "cat", "the"], ["dogs", "bark"]]
    tags = [["DET", "NOUN", "DET"], ["NOUN", "VERB"]]
    teacher = [np.zeros((3, 2)), np.zeros((2, 2))]
    after = probes.probe_frame(
        tokens, tags, [np.array([[1.0, 1], [2, 2], [3, 3]]), np.ones((2, 2))], teacher, "after_phase1"
    )
    before = probes.probe_frame(
        tokens, tags, [np.full((3, 2), 4.0), np.full((2, 2), 4.0)], teacher, "before_phase1"
    )
    return pd.concat([after, before], ignore_index=True)


def test_umap_scatter_traces_hover_and_links():
    fig = viz.umap_scatter(_umap_frame())
    names = [t.name for t in fig.data]
    assert names == ["teacher–adapted", "teacher", "adapted", "student"]
    link = fig.data[0]
    assert list(link.x) == [1.0, 1.5, None, 5.0, 5.5, None] and list(link.y) == [
        2.0,
        2.0,
        None,
        6.0,
        6.0,
        None,
    ]
    teacher = fig.data[1]
    assert list(teacher.x) == [1.0, 5.0]
    assert list(teacher.hovertext) == ["Haus (NOUN) · teacher", "und (CCONJ) · teacher"]
    assert fig.data[3].xaxis == "x2"  # the student has its own panel: its coordinates are another map
    assert fig.layout.xaxis.title.text == "UMAP 1" and fig.layout.yaxis2.title.text == "UMAP 2"
    no_link = viz.umap_scatter(_umap_frame(), link=False)
    assert [t.name for t in no_link.data] == ["teacher", "adapted", "student"]


def test_umap_scatter_requires_columns():
    with pytest.raises(ValueError, match="lacks column"):
        viz.umap_scatter(_umap_frame().drop(columns="token"))


def test_mse_heatmap_tokens_on_x_phases_on_y():
    df = _probe_rows()
    fig = viz.mse_heatmap(df[df.sentence == 0])
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap)
    assert list(heat.y) == ["before phase 1", "after phase 1"]
    np.testing.assert_allclose(np.asarray(heat.z, dtype=float), [[16, 16, 16], [1, 4, 9]])
    assert list(heat.x) == [0, 1, 2]  # positions: the two "the" stay separate columns
    assert list(fig.layout.xaxis.ticktext) == ["the", "cat", "the"]
    assert fig.layout.xaxis.title.text == "token" and fig.layout.yaxis.title.text == "phase"
    cosine = viz.mse_heatmap(df[df.sentence == 1], metric="cosine")
    np.testing.assert_allclose(np.asarray(cosine.data[0].z, dtype=float), 1.0)
    with pytest.raises(ValueError, match="several sentences"):
        viz.mse_heatmap(df)


def test_mse_by_tag_one_bar_trace_per_phase():
    fig = viz.mse_by_tag(_probe_rows())
    assert [t.name for t in fig.data] == ["before phase 1", "after phase 1"]
    after = fig.data[1]
    assert list(after.x) == ["DET", "NOUN", "VERB"]
    np.testing.assert_allclose(after.y, [(1 + 9) / 2, (4 + 1) / 2, 1])
    assert fig.layout.barmode == "group" and fig.layout.yaxis.title.text == "mean mse"


def test_loss_curves_one_panel_per_phase():
    history = {"phase1": [[0, 2.0], [10, 1.0]], "phase2": [[0, 0.5], [5, 0.4], [10, 0.3]], "phase3": []}
    fig = viz.loss_curves(history)
    assert [t.name for t in fig.data] == ["phase 1", "phase 2"]  # empty phases are left out; human labels
    assert list(fig.data[1].x) == [0, 5, 10] and list(fig.data[1].y) == [0.5, 0.4, 0.3]
    assert fig.data[1].xaxis == "x2" and fig.layout.xaxis.title.text == "step"
    with pytest.raises(ValueError, match="no recorded steps"):
        viz.loss_curves({"phase1": []})
    with pytest.raises(ValueError, match="step, loss"):
        viz.loss_curves({"phase1": [[1, 2, 3]]})


def test_results_table_figure_headers_and_cells():
    table = pd.DataFrame({"Model": ["a", "b"], "POS Acc": ["90.00", None]})
    fig = viz.results_table_figure(table, title="T1")
    assert list(fig.data[0].header.values) == ["Model", "POS Acc"]
    assert [list(c) for c in fig.data[0].cells.values] == [["a", "b"], ["90.00", ""]]
    assert fig.layout.title.text == "T1"


def test_results_table_figure_is_tall_enough_for_every_row_and_rounds_numbers():
    rows = ["Teacher", "Student", "Frozen W1", "Frozen W3", "Frozen W5", "Joint W3", "LoRA", "LoRA + ALAd"]
    table = pd.DataFrame({"Setting": rows, "W": [np.nan, np.nan, 1.0, 3.0, 5.0, 3.0, np.nan, 5.0],
                          "Sz": [100.0, 16.521210320341854, *[17.4] * 6]})
    fig = viz.results_table_figure(table, title="T1")
    setting, window, size = (list(c) for c in fig.data[0].cells.values)
    assert setting == rows  # all 8 rows, in order
    assert window[:3] == ["", "", "1"] and size[:2] == ["100", "16.52"]
    cells = fig.data[0].cells.height * len(rows) + fig.data[0].header.height
    assert fig.layout.height >= cells + fig.layout.margin.t + fig.layout.margin.b  # no row scrolled out of view


def test_cka_heatmap_values_and_labels():
    m = pd.DataFrame([[1.0, 0.25], [0.25, 1.0]], index=["adapted", "teacher"], columns=["adapted", "teacher"])
    heat = viz.cka_heatmap(m).data[0]
    assert list(heat.x) == ["adapted", "teacher"] and list(heat.y) == ["adapted", "teacher"]
    np.testing.assert_allclose(heat.z, m.to_numpy())
    assert (heat.zmin, heat.zmax) == (0, 1)


def test_alignment_by_phase_orders_phases():
    alignment = {"after_phase2": {"mse": 0.1, "cosine": 0.9}, "before_phase1": {"mse": 1.0, "cosine": 0.0}}
    fig = viz.alignment_by_phase(alignment)
    assert list(fig.data[0].x) == ["before phase 1", "after phase 2"]
    assert list(fig.data[0].y) == [1.0, 0.1] and list(fig.data[1].y) == [0.0, 0.9]
    with pytest.raises(ValueError, match="no alignment"):
        viz.alignment_by_phase({})


def test_scores_table_flattens_nested_scores():
    fig = viz.scores_table({"f1_overall": 0.5, "per_type": {"PER": 0.25}})
    assert [list(c) for c in fig.data[0].cells.values] == [["f1_overall", "per_type.PER"], ["0.5", "0.25"]]


def _phased_umap(*phases):
    return pd.concat([_umap_frame().assign(phase=p) for p in phases], ignore_index=True)


def test_umap_before_after_puts_the_two_phases_side_by_side():
    fig = viz.umap_before_after(_phased_umap("before_phase1", "after_phase1", "after_phase3"))
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("before phase 1") and titles[-1].startswith("after phase 1")
    assert len(titles) == 2 * _umap_frame()["space"].nunique()
    names = [t.name for t in fig.data if t.showlegend is not False]
    assert len(names) == len(set(names))  # each source once in the legend
    later = viz.umap_before_after(_phased_umap("before_phase1", "after_phase3"))  # no phase 1 ran
    assert later.layout.annotations[-1].text.startswith("after phase 3")
    with pytest.raises(ValueError, match="needs phases 'before_phase1'"):
        viz.umap_before_after(_phased_umap("after_phase2", "after_phase3"))


def test_validation_curve_figure_one_line_per_run_and_the_kept_epoch():
    runs = {
        "W1": {"selection": {"metric": "f1", "best_epoch": 2, "validation": [[1, 0.2], [2, 0.5], [3, 0.4]]}},
        "W5": {"selection": {"metric": "f1", "best_epoch": 1, "validation": [[1, 0.6], [2, 0.55]]}},
        "bare": {"scores": {}},
    }
    fig = viz.validation_curve_figure(runs)
    lines = {t.name: list(t.y) for t in fig.data if t.mode == "lines+markers"}
    assert lines == {"W1": [0.2, 0.5, 0.4], "W5": [0.6, 0.55]}
    stars = {t.name: (list(t.x), list(t.y)) for t in fig.data if t.mode == "markers"}
    assert stars == {"W1: kept epoch": ([2.0], [0.5]), "W5: kept epoch": ([1.0], [0.6])}
    assert fig.layout.yaxis.title.text == "f1"
    with pytest.raises(ValueError, match="no run has a per-epoch validation score"):
        viz.validation_curve_figure({"bare": {"selection": {"validation": []}}})
