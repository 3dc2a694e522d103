"""What notebooks show of an ``alad study``: every seed's score per row, the claims with their verdicts.

``seed_scores`` reads the runs below a study root (``<study>/<row>/seed<k>/metrics.json``) into one row per
run; ``seed_figure`` draws one point per seed and each row's mean with its standard error, so a reader sees
the spread that the claims' verdicts rest on; ``claims_frame`` is ``claims.json`` as a table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from .claims import load_studies, selection_metric
from .labels import model_label
from .table import score_columns, student_label


def seed_scores(root: str | Path) -> pd.DataFrame:
    """One line per run of every study below ``root``: study, task, student, row, seed, metric, value (in
    the units tables show: POS/NER x100, QA %)."""
    factor = {(task, key): f for task, key, _, f in score_columns()}
    lines = []
    for study in load_studies(root):
        metric = selection_metric(study.task)
        for row, seeds in study.runs.items():
            for seed, (rel, metrics) in sorted(seeds.items()):
                value = metrics["scores"].get(metric)
                if isinstance(value, (int, float)):
                    lines.append({"study": study.path.name, "task": study.task,
                                  "student": student_label(study.student), "row": row, "seed": seed,
                                  "metric": metric, "value": value * factor.get((study.task, metric), 1.0),
                                  "run": rel})
    columns = ["study", "task", "student", "row", "seed", "metric", "value", "run"]
    return pd.DataFrame(lines, columns=columns)


def row_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std, standard error and seed count of each (study, row), best mean first per study."""
    grouped = scores.groupby(["study", "row"])["value"]
    summary = grouped.agg(mean="mean", std="std", n="count").reset_index()
    summary["se"] = summary["std"] / summary["n"].map(math.sqrt)
    return summary.sort_values(["study", "mean"], ascending=[True, False]).reset_index(drop=True)


def seed_figure(scores: pd.DataFrame, study: str | None = None, title: str | None = None) -> go.Figure:
    """One point per seed (grey) and each row's mean ± 1 SE (black) for one study (the first by default);
    rows sorted by their mean, best at the top."""
    if scores.empty:
        raise ValueError("seed_figure: no runs to show (is the study directory empty?)")
    study = study or sorted(scores["study"].unique())[0]
    part = scores[scores["study"] == study]
    if part.empty:
        raise ValueError(f"seed_figure: no study {study!r}; have {sorted(scores['study'].unique())}")
    summary = row_summary(part).iloc[::-1]  # plotly draws the first category at the bottom
    order = list(summary["row"])
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=part["value"], y=part["row"], mode="markers", name="one seed",
                             marker={"color": "rgba(120,120,120,0.7)", "size": 8},
                             text=[f"seed {s}" for s in part["seed"]], hovertemplate="%{y} %{text}: %{x:.2f}"))
    fig.add_trace(go.Scatter(x=summary["mean"], y=summary["row"], mode="markers", name="mean ± SE",
                             marker={"color": "black", "symbol": "diamond", "size": 10},
                             error_x={"type": "data", "array": summary["se"].fillna(0.0), "visible": True}))
    task, metric = part["task"].iloc[0], part["metric"].iloc[0]
    fig.update_layout(title=title or f"{study}: {task.upper()} {metric}, every seed",
                      xaxis_title=f"{metric} (test)", yaxis={"categoryorder": "array", "categoryarray": order},
                      height=max(320, 28 * len(order) + 120), legend={"orientation": "h", "y": -0.15})
    return fig


def claims_frame(path: str | Path) -> pd.DataFrame:
    """``claims.json`` (a file, or a study directory holding one) as a table: id, claim, task, student (its label),
    a, b, metric, delta_mean, delta_se, n_seeds, t, p, verdict (the run lists are left in the file)."""
    path = Path(path)
    path = path / "claims.json" if path.is_dir() else path
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read claims ({err}); run `alad study` to write it") from None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: claims.json must hold a list of claims")
    columns = ["id", "claim", "task", "student", "a", "b", "metric", "delta_mean", "delta_se", "n_seeds", "t", "p",
               "verdict"]
    frame = pd.DataFrame([{k: e.get(k) for k in columns} | {"gap_recovered": e.get("gap_recovered")}
                          for e in entries])
    if len(frame):  # "minilm-l6 (layers 0–1)", not the run key "minilm-l6:0,1"
        frame["student"] = frame["student"].map(lambda s: model_label(s) if isinstance(s, str) else s)
    return frame
