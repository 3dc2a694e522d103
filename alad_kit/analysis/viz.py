"""Plotly figures of probes, training and results. Every function returns a ``go.Figure``; callers display.

Inputs are the plain frames of ``alad_kit.analysis.probes`` (probe rows, UMAP rows), ``history.json`` loss curves,
``metrics.json`` parts and the results table of ``alad_kit.analysis.table``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .labels import PHASE_LABELS, number_text, phase_label, window_label  # noqa: F401 (re-exported)
from .probes import PHASES, aggregate, phase_summary

SOURCE_COLORS = {"teacher": "#1f77b4", "adapted": "#ff7f0e", "student": "#2ca02c"}


def ordered_phases(phases) -> list[str]:
    """Distinct phase labels in training order (``PHASES``), unknown labels after them, sorted."""
    present = list(dict.fromkeys(phases))
    return [p for p in PHASES if p in present] + sorted(p for p in present if p not in PHASES)


def _require(df: pd.DataFrame, columns: Sequence[str], who: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{who}: frame lacks column(s) {missing}; has {list(df.columns)}")


# --------------------------------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------------------------------


def umap_scatter(df: pd.DataFrame, link: bool = True, title: str = "Word vectors (UMAP)") -> go.Figure:
    """Scatter of a ``probes.umap_projection`` frame: one trace per source, one panel per UMAP space.

    Hover shows token, tag and source. With ``link``, grey segments join each word's teacher and adapted
    points (one extra trace, ``name="teacher–adapted"``): short segments = well aligned words.
    """
    _require(df, _UMAP_COLUMNS, "umap_scatter")
    spaces = list(dict.fromkeys(df["space"])) if "space" in df.columns else ["all"]
    fig = make_subplots(rows=1, cols=len(spaces), subplot_titles=[s.replace("+", " + ") for s in spaces])
    for col, space in enumerate(spaces, start=1):
        _umap_panel(fig, df if space == "all" else df[df["space"] == space], col, link)
    fig.update_layout(title=title, legend_title_text="source")
    return fig


def umap_before_after(df: pd.DataFrame, before: str = "before_phase1", after: str | None = None, link: bool = True,
                      title: str = "Word vectors (UMAP), before and after alignment") -> go.Figure:
    """The UMAP of phase ``before`` next to the one of phase ``after`` (a frame with a ``phase`` column);
    ``after`` defaults to ``after_phase1``, else the last phase the frame holds. One panel per phase and space."""
    _require(df, (*_UMAP_COLUMNS, "phase"), "umap_before_after")
    phases = ordered_phases(df["phase"])
    if after is None:
        after = "after_phase1" if "after_phase1" in phases else phases[-1]
    missing = [p for p in (before, after) if p not in phases]
    if missing or before == after:
        raise ValueError(f"umap_before_after: needs phases {before!r} and {after!r}; the frame has {phases}")
    panels = []
    for phase in (before, after):
        rows = df[df["phase"] == phase]
        spaces = list(dict.fromkeys(rows["space"])) if "space" in rows.columns else ["all"]
        for space in spaces:
            label = phase_label(phase) if space == "all" else f"{phase_label(phase)}: {space.replace('+', ' + ')}"
            panels.append((label, rows if space == "all" else rows[rows["space"] == space]))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[label for label, _ in panels])
    for col, (_, part) in enumerate(panels, start=1):
        _umap_panel(fig, part, col, link, legend=col == 1)
    fig.update_layout(title=title, legend_title_text="source")
    return fig


_UMAP_COLUMNS = ("x", "y", "source", "token", "tag", "index")


def _umap_panel(fig: go.Figure, part: pd.DataFrame, col: int, link: bool, legend: bool | None = None) -> None:
    """Panel ``col`` of a UMAP figure: the teacher–adapted links, then one marker trace per source."""
    if link and {"teacher", "adapted"} <= set(part["source"]):
        fig.add_trace(_link_trace(part).update(showlegend=legend), row=1, col=col)
    for source, rows in part.groupby("source", sort=False):
        fig.add_trace(
            go.Scatter(
                x=rows["x"].to_numpy(),
                y=rows["y"].to_numpy(),
                mode="markers",
                name=str(source),
                legendgroup=str(source),
                showlegend=legend,
                marker={"size": 7, "color": SOURCE_COLORS.get(source), "opacity": 0.8},
                hovertext=[f"{t} ({g}) · {source}" if g else f"{t} · {source}" for t, g in zip(rows["token"], rows["tag"])],
                hoverinfo="text",
                customdata=rows["index"].to_numpy(),
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(title_text="UMAP 1", row=1, col=col)
    fig.update_yaxes(title_text="UMAP 2", row=1, col=col)


def _link_trace(part: pd.DataFrame) -> go.Scatter:
    """One line trace with a segment per word (teacher point -> adapted point), separated by None gaps."""
    teacher = part[part["source"] == "teacher"].set_index("index")
    adapted = part[part["source"] == "adapted"].set_index("index")
    common = teacher.index.intersection(adapted.index)
    xs, ys = [], []
    for i in common:
        xs += [teacher.at[i, "x"], adapted.at[i, "x"], None]
        ys += [teacher.at[i, "y"], adapted.at[i, "y"], None]
    return go.Scatter(
        x=xs,
        y=ys,
        mode="lines",
        name="teacher–adapted",
        line={"color": "lightgrey", "width": 1},
        hoverinfo="skip",
    )


def mse_heatmap(df_sentence: pd.DataFrame, metric: str = "mse", title: str | None = None) -> go.Figure:
    """Heatmap of one sentence's per-token error: tokens on x (in order), phases on y (training order).

    ``df_sentence`` = probe rows of ONE sentence (any number of phases). x holds positions so repeated words
    stay separate columns; the axis shows the tokens via ``tickvals``/``ticktext``.
    """
    _require(df_sentence, ("position", "token", "phase", metric), "mse_heatmap")
    if "sentence" in df_sentence.columns and df_sentence["sentence"].nunique() > 1:
        raise ValueError("mse_heatmap: frame holds several sentences; select one (df[df.sentence == i])")
    phases = ordered_phases(df_sentence["phase"])
    grid = df_sentence.pivot_table(index="phase", columns="position", values=metric, aggfunc="mean")
    grid = grid.reindex(index=phases)
    positions = list(grid.columns)
    tokens = df_sentence.drop_duplicates("position").set_index("position")["token"].reindex(positions)
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=positions,
            y=[phase_label(p) for p in phases],
            colorscale="Reds" if metric == "mse" else "Viridis",
            colorbar={"title": metric},
            customdata=np.tile(np.asarray(tokens, dtype=object), (len(phases), 1)),
            hovertemplate="%{customdata}<br>%{y}<br>" + metric + " = %{z:.4f}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="token", tickvals=positions, ticktext=list(tokens), tickangle=-45)
    fig.update_yaxes(title_text="phase", autorange="reversed")
    fig.update_layout(title=title or f"Per-token {metric} by phase")
    return fig


def mse_by_tag(df: pd.DataFrame, metric: str = "mse", title: str | None = None) -> go.Figure:
    """Grouped bars: mean per-token error per tag, one bar trace per phase (training order)."""
    _require(df, ("tag", "phase", metric), "mse_by_tag")
    table = aggregate(df, ["phase", "tag"])
    tags = sorted(table["tag"].unique())
    fig = go.Figure()
    for phase in ordered_phases(table["phase"]):
        rows = table[table["phase"] == phase].set_index("tag").reindex(tags)
        fig.add_trace(
            go.Bar(
                x=tags,
                y=rows[metric].to_numpy(),
                name=phase_label(phase),
                customdata=rows["tokens"].to_numpy(),
                hovertemplate="%{x}: %{y:.4f} (%{customdata} tokens)<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group", title=title or f"Mean per-token {metric} by tag", legend_title_text="phase"
    )
    fig.update_xaxes(title_text="tag")
    fig.update_yaxes(title_text=f"mean {metric}")
    return fig


def cka_heatmap(matrix: pd.DataFrame, title: str = "Linear CKA") -> go.Figure:
    """Annotated heatmap of a ``probes.cka_matrix`` frame (values in [0, 1])."""
    z = matrix.to_numpy(dtype=float)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(matrix.columns),
            y=list(matrix.index),
            zmin=0,
            zmax=1,
            colorscale="Blues",
            text=np.round(z, 3),
            texttemplate="%{text}",
            colorbar={"title": "CKA"},
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title)
    return fig


def alignment_by_phase(
    alignment: Mapping[str, Mapping[str, float]], title: str = "Alignment by phase"
) -> go.Figure:
    """Two panels (MSE, cosine) of ``metrics.json["alignment"]`` = {phase: {"mse", "cosine"}}."""
    if not alignment:
        raise ValueError("alignment_by_phase: no alignment measurements (run without adapter?)")
    phases = ordered_phases(alignment)
    labels = [phase_label(p) for p in phases]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["MSE (lower is better)", "cosine (higher is better)"])
    for col, key in enumerate(("mse", "cosine"), start=1):
        values = [alignment[p].get(key) for p in phases]
        fig.add_trace(go.Bar(x=labels, y=values, name=key, text=[_fmt(v) for v in values]), row=1, col=col)
        fig.update_xaxes(title_text="phase", row=1, col=col)
        fig.update_yaxes(title_text=key, row=1, col=col)
    fig.update_layout(title=title, showlegend=False)
    return fig


def alignment_by_window(probes: Mapping[int, pd.DataFrame], metric: str = "mse",
                        title: str | None = None) -> go.Figure:
    """One line per window ("W1", "W3", ...) of the mean per-token ``metric`` after each phase (training order,
    human labels); ``probes`` = {window: probe rows of all phases} (e.g. ``ExplorerData.probes``)."""
    if not probes:
        raise ValueError("alignment_by_window: no probe frames")
    phases = ordered_phases(p for df in probes.values() for p in df["phase"])
    fig = go.Figure()
    for window in sorted(probes):
        summary = phase_summary(probes[window]).set_index("phase").reindex(phases)
        fig.add_trace(go.Scatter(x=[phase_label(p) for p in phases], y=summary[metric].to_numpy(),
                                 mode="lines+markers", name=window_label(window),
                                 hovertemplate="%{x}: %{y:.4f}<extra>" + window_label(window) + "</extra>"))
    name, better = ("MSE", "lower") if metric == "mse" else (metric, "higher")
    fig.update_layout(title=title or f"Held-out {name} to the teacher by phase and window ({better} is better)",
                      xaxis_title="", yaxis_title=f"mean per-token {name}", legend_title_text="window")
    return fig


def _fmt(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.4g}"


# --------------------------------------------------------------------------------------------------
# Training and results
# --------------------------------------------------------------------------------------------------


def loss_curves(history: Mapping[str, Sequence[Sequence[float]]], title: str = "Training loss") -> go.Figure:
    """One panel per phase (phase 1/2 are MSE, phase 3 a task loss: different scales), loss vs step.

    ``history`` = ``history.json`` = {phase: [[step, loss], ...]}.
    """
    phases = [p for p in history if len(history[p])]
    if not phases:
        raise ValueError("loss_curves: history has no recorded steps")
    fig = make_subplots(rows=1, cols=len(phases), subplot_titles=[phase_label(p) for p in phases])
    for col, phase in enumerate(phases, start=1):
        points = np.asarray(history[phase], dtype=float)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"loss_curves: phase {phase!r} must be a list of [step, loss] pairs")
        fig.add_trace(go.Scatter(x=points[:, 0], y=points[:, 1], mode="lines", name=phase_label(phase)),
                      row=1, col=col)
        fig.update_xaxes(title_text="step", row=1, col=col)
        fig.update_yaxes(title_text="loss", row=1, col=col)
    fig.update_layout(title=title, showlegend=False)
    return fig


def validation_curve_figure(runs: Mapping[str, Mapping], title: str = "Validation score per epoch") -> go.Figure:
    """One line per run of ``metrics.json["selection"]["validation"]`` = [[epoch, score], ...] (phase 3's
    model selection); the kept (best) epoch is a star. ``runs`` = {label: metrics}."""
    fig, metrics_names = go.Figure(), set()
    for label, metrics in runs.items():
        selection = metrics.get("selection") or {}
        points = np.asarray(selection.get("validation") or [], dtype=float)
        if not len(points):
            continue
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"validation_curve_figure: run {label!r} must hold a list of [epoch, score] pairs")
        metrics_names.add(selection.get("metric") or "score")
        fig.add_trace(go.Scatter(x=points[:, 0], y=points[:, 1], mode="lines+markers", name=str(label),
                                 legendgroup=str(label)))
        best = points[points[:, 0] == selection.get("best_epoch")]
        if len(best):
            fig.add_trace(go.Scatter(x=best[:, 0], y=best[:, 1], mode="markers", name=f"{label}: kept epoch",
                                     legendgroup=str(label), marker={"symbol": "star", "size": 14}))
    if not fig.data:
        raise ValueError("validation_curve_figure: no run has a per-epoch validation score")
    y_title = metrics_names.pop() if len(metrics_names) == 1 else "validation score"
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title=y_title, xaxis={"dtick": 1})
    return fig


def results_table_figure(table_df: pd.DataFrame, title: str | None = None) -> go.Figure:
    """``go.Table`` of a results table (e.g. ``table.results_table``), tall enough for every row; MultiIndex
    headers are joined, whole numbers shown without decimals (window 1, not 1.0), others rounded to 2 places,
    missing values blank."""
    headers = [
        " ".join(str(p) for p in c if str(p)) if isinstance(c, tuple) else str(c) for c in table_df.columns
    ]
    cells = [[number_text(v) for v in table_df[c]] for c in table_df.columns]
    row_px, header_px = 26, 32
    # columns as wide as their longest text (within 4..48 characters), so that cells do not wrap to a second
    # line, which would push the last rows below the figure's height
    widths = [min(48, max(4, len(h), *(len(v) for v in column))) for h, column in zip(headers, cells)]
    fig = go.Figure(
        go.Table(
            columnwidth=widths,
            header={"values": headers, "fill_color": "#e8eef7", "align": "left", "height": header_px},
            cells={"values": cells, "align": "left", "height": row_px},
        )
    )
    top = 50 if title else 10
    fig.update_layout(title=title, height=top + header_px + row_px * len(table_df) + 30,
                      margin={"t": top, "b": 10, "l": 10, "r": 10})
    return fig


def scores_table(scores: Mapping[str, object], title: str = "Scores") -> go.Figure:
    """Two-column ``go.Table`` (metric, value) of ``metrics.json["scores"]``; nested dicts are flattened."""
    flat: list[tuple[str, str]] = []
    for key, value in scores.items():
        if isinstance(value, Mapping):
            flat += [(f"{key}.{k}", _fmt(v)) for k, v in value.items()]
        else:
            flat.append((str(key), _fmt(value) if isinstance(value, (int, float)) else str(value)))
    frame = pd.DataFrame(flat, columns=["metric", "value"])
    return results_table_figure(frame, title=title)
