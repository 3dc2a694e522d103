"""One self-contained HTML page per run: ``alad report RUN_DIR`` -> RUN_DIR/report.html.

Reads the files a run writes (``metrics.json`` required; ``history.json``, ``probes.csv|parquet`` and
``umap.csv|parquet`` optional) and lays out their figures: scores, alignment before/after each phase, loss
curves, the validation score per epoch, per-token MSE heatmaps, MSE by tag and the UMAP of word vectors
(before phase 1 next to after it, and after the last phase). plotly.js is inlined once, with
the first figure; the others reference it, so the page works offline and stays one file (~5 MB).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import plotly.graph_objects as go

from alad_kit.analysis import viz
from alad_kit.core import rundir
from alad_kit.core.io import write_text_atomic
from alad_kit.core.rundir import PROBES_STEM, UMAP_STEM

from .labels import model_label, number_text, window_label
from .probes import load_run_frame, phase_summary

REPORT_NAME = "report.html"
HEATMAP_SENTENCES = 3  # probe sentences shown as heatmaps (the first ones of the probe file)
META_KEYS = ("task", "teacher", "student", "mode", "window", "seed", "scale", "size_pct", "is_teacher")


def run_figures(run_dir: str | os.PathLike) -> list[tuple[str, go.Figure]]:
    """(section title, figure) pairs for everything the run directory holds, in page order."""
    run_dir = Path(run_dir)
    metrics = rundir.read_metrics(run_dir)
    figures: list[tuple[str, go.Figure]] = [("Scores", viz.scores_table(metrics["scores"]))]

    probes = load_run_frame(run_dir, PROBES_STEM)
    alignment = dict(metrics.get("alignment") or {})
    if probes is not None and len(probes):  # phases the metrics lack (e.g. after_phase3) come from probes
        for _, row in phase_summary(probes).iterrows():
            alignment.setdefault(row["phase"], {"mse": row["mse"], "cosine": row["cosine"]})
    if alignment:
        figures.append(("Alignment with the teacher, by phase", viz.alignment_by_phase(alignment)))

    history_path = rundir.history_path(run_dir)
    if history_path.is_file():
        history = rundir.read_json(history_path)
        if any(len(v) for v in history.values()):
            figures.append(("Training loss", viz.loss_curves(history)))
    if (metrics.get("selection") or {}).get("validation"):
        figures.append(("Validation score per epoch (phase 3)", viz.validation_curve_figure({"phase 3": metrics})))

    if probes is not None and len(probes):
        for sentence in list(dict.fromkeys(probes["sentence"]))[:HEATMAP_SENTENCES]:
            rows = probes[probes["sentence"] == sentence]
            figures.append((f"Per-token MSE, probe sentence {sentence}", viz.mse_heatmap(rows)))
        if (probes["tag"] != "").any():
            figures.append(("MSE by tag", viz.mse_by_tag(probes)))

    umap_frame = load_run_frame(run_dir, UMAP_STEM)
    if umap_frame is not None and len(umap_frame):
        figures += _umap_figures(umap_frame)
    return figures


def _umap_figures(frame) -> list[tuple[str, go.Figure]]:
    """Before phase 1 next to after phase 1 (else the last phase), and the last phase alone when it is later."""
    if "phase" not in frame.columns:
        return [("Word vectors (UMAP)", viz.umap_scatter(frame))]
    phases = viz.ordered_phases(frame["phase"])
    figures = []
    if "before_phase1" in phases and len(phases) > 1:
        fig = viz.umap_before_after(frame)
        figures.append((fig.layout.title.text, fig))
    last = phases[-1]
    if last not in ("before_phase1", "after_phase1") or len(phases) == 1:
        title = f"Word vectors (UMAP), {viz.phase_label(last)}"
        figures.append((title, viz.umap_scatter(frame[frame["phase"] == last], title=title)))
    return figures


def render_report(run_dir: str | os.PathLike) -> str:
    """The report page as a string (see ``write_report``)."""
    run_dir = Path(run_dir)
    metrics = rundir.read_json(rundir.metrics_path(run_dir))
    sections = []
    for i, (title, fig) in enumerate(run_figures(run_dir)):
        div = fig.to_html(full_html=False, include_plotlyjs=(i == 0), default_width="100%")
        sections.append(f"<section><h2>{html.escape(title)}</h2>\n{div}\n</section>")
    meta = "".join(
        f"<tr><th>{k}</th><td>{html.escape(text)}</td></tr>" for k, text in meta_rows(metrics).items()
    )
    student = model_label(metrics.get("student"), metrics.get("student_layers"))
    name = f"{metrics.get('task', '?')} · {student} · {metrics.get('mode', '?')}"
    if metrics.get("window") is not None:
        name += f" · {window_label(metrics['window'])}"
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px} th{text-align:left;padding-right:1em}"
             " section{overflow:visible} .plotly-graph-div{overflow:visible}")
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>ALAd run: {html.escape(name)}</title><style>{style}</style></head>\n<body>\n"
        f"<h1>ALAd run: {html.escape(name)}</h1>\n<p>{html.escape(str(run_dir))}</p>\n"
        f"<table>{meta}</table>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def meta_rows(metrics: dict) -> dict[str, str]:
    """The run's settings as the page's first table shows them: the student with the layers it keeps, the
    window as "W3" ("" without one), the size rounded to 0.1 %."""
    rows = {}
    for key in META_KEYS:
        if key not in metrics:
            continue
        value = metrics[key]
        if key == "student":
            value = model_label(value, metrics.get("student_layers"))
        elif key == "window":
            value = window_label(value) or "none"
        elif key == "size_pct":
            value = f"{number_text(value, 1)} % of the teacher" if number_text(value, 1) else ""
        rows[key] = str(value)
    return rows


def write_report(run_dir: str | os.PathLike, out_path: str | os.PathLike | None = None) -> Path:
    """``alad report RUN_DIR``: write the run's figures to one HTML page (default RUN_DIR/report.html)."""
    run_dir = Path(run_dir)
    if not rundir.metrics_path(run_dir).is_file():
        raise FileNotFoundError(f"write_report: {run_dir} has no {rundir.METRICS_NAME}")
    out = Path(out_path) if out_path is not None else run_dir / REPORT_NAME
    return write_text_atomic(out, render_report(run_dir))

