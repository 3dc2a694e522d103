"""Learning-rate sweeps as a table: one row per run, its phase-3 lr of one part, validation curve and scores.

``alad table DIR --sweep head`` reads every ``metrics.json`` below DIR and writes ``DIR/sweep_head.md``
(and .csv, .html): mode, window, the part's lr, the best validation score and its epoch, the validation
score of the last epoch (has the curve flattened?), the number of phase-3 steps and the test score. The
default of a part is chosen on the *validation* column; the test column is shown, never used to choose.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from alad_kit.core import rundir

from .formats import write_formats
from .labels import number_text, window_label

NOTE = ("Chosen on the best validation score (model selection keeps the best epoch); the test score is "
        "reported for information only.")


def sweep_rows(runs_dir: str | os.PathLike, part: str) -> pd.DataFrame:
    """One row per run below ``runs_dir`` that trained ``part`` in phase 3."""
    rows = []
    for path in rundir.metrics_files(runs_dir):
        try:
            m = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: unreadable metrics.json ({e})") from None
        lr = (m.get("phase3_lr") or {}) if isinstance(m.get("phase3_lr"), dict) else {}
        if part not in lr:
            continue
        selection = m.get("selection") or {}
        curve = selection.get("validation") or []
        metric = selection.get("metric")
        rows.append({
            "run": str(path.parent.relative_to(runs_dir)), "task": m.get("task"), "mode": m.get("mode"),
            "window": m.get("window"), f"{part}_lr": lr[part],
            "best_validation": max((s for _, s in curve), default=None), "best_epoch": selection.get("best_epoch"),
            "last_validation": curve[-1][1] if curve else None, "epochs": len(curve),
            "steps": ((m.get("phases") or {}).get("phase3") or {}).get("steps"),
            "metric": metric, "test": (m.get("scores") or {}).get(metric),
        })
    if not rows:
        raise ValueError(f"no run below {runs_dir} trained the part {part!r} in phase 3")
    return pd.DataFrame(rows).sort_values(["task", "mode", "window", f"{part}_lr"], na_position="first")


def write_sweep_table(runs_dir: str | os.PathLike, part: str = "head", out: str | os.PathLike | None = None) -> dict:
    table = sweep_rows(runs_dir, part)
    for column in ("best_validation", "last_validation", "test"):
        table[column] = table[column].map(lambda v: None if v is None or pd.isna(v) else round(100 * v, 2))
    # a column with a missing value turns float in pandas: show whole numbers as such ("W3", 4; not 3.0, NaN)
    table["window"] = table["window"].map(window_label)
    for column in ("best_epoch", "epochs", "steps"):
        table[column] = table[column].map(number_text)
    return write_formats(table, Path(out or runs_dir), f"sweep_{part}", note=NOTE, title=f"{part} lr sweep")
