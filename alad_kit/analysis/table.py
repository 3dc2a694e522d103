"""Results table in the layout of the paper's Table 1, from the ``metrics.json`` files of many runs.

``collect_runs`` reads every run below a directory into one row each; ``summarize_runs`` averages seeds
(numbers); ``results_table`` formats them (strings) as Table 1: row groups

    Teacher fine-tuned | Student fine-tuned | Frozen + W1/W3/W5 | Jointly fine-tuned + W1/W3/W5 |
    LoRA | LoRA + W1/W3/W5

with one column per task score (POS Acc/F1, NER F1_O/F1_M, QA EM/F1), size (Sz, % of the teacher) and speed
(Spd). ``write_table`` writes results.md / .csv / .html.

Units: POS and NER scores are stored as fractions (seqeval/scikit-learn) and shown x100; SQuAD EM/F1 are
stored as percentages (official script) and shown as they are. Seeds: mean; with 2 seeds the spread is the
[min–max] range, with 3 or more the sample standard deviation (± sd, ddof=1).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from alad_kit.core import rundir
from alad_kit.core.config import (  # SCALES: smallest to largest
    MODES,
    SCALES,
    TASKS,
    phase3_config,
    scale_config,
)
from alad_kit.tasks import get_task

from .formats import write_formats
from .labels import model_label


def score_columns() -> tuple:
    """(task, key in metrics.json["scores"], column label, display factor) of every registered task, in
    registration order: each task's own ``Task.score_columns``, labelled with its title (e.g. "NER F1_O")."""
    return tuple((name, key, f"{spec.title} {label}", factor)
                 for name, spec in ((name, get_task(name)) for name in TASKS)
                 for key, label, factor in spec.score_columns)


# (row group label, mode, is_teacher, uses a window) in table order
GROUPS = (
    ("Teacher fine-tuned", "finetune", True, False),
    ("Teacher frozen, head only", "head", True, False),
    ("Student fine-tuned", "finetune", False, False),
    ("Frozen student, head only", "head", False, False),
    ("Frozen + ALAd", "frozen", False, True),
    ("Jointly fine-tuned + ALAd", "joint", False, True),
    ("LoRA", "lora", False, False),
    ("LoRA + ALAd", "lora+alad", False, True),
)
REQUIRED_KEYS = ("task", "mode", "scores")
SPREAD_NOTE = (
    "Mean over seeds; [min–max] with 2 seeds, ± sample std with 3 or more; (n=k) marks a cell with fewer seeds "
    "than its row. POS/NER scores x100, QA EM/F1 in %. Sz: deployed size in % of the teacher; Spd: speed."
)


# --------------------------------------------------------------------------------------------------
# Reading runs
# --------------------------------------------------------------------------------------------------


def collect_runs(runs_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per ``metrics.json`` found below ``runs_dir`` (recursively, sorted by path).

    Columns: run_dir, task, teacher, student, mode, window, seed, scale, is_teacher, size_pct, spd and one
    ``score.<name>`` column per numeric score. Unreadable files (bad JSON, missing task/mode/scores) are
    skipped with ONE warning that counts and names them.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"collect_runs: runs directory {root} does not exist")
    rows, bad = [], []
    for path in rundir.metrics_files(root):
        try:
            rows.append(_run_row(path))
        except (OSError, ValueError, TypeError) as err:  # JSONDecodeError is a ValueError
            bad.append(f"{path}: {err}")
    if bad:
        warnings.warn(
            f"collect_runs: skipped {len(bad)} unreadable metrics.json file(s): " + "; ".join(bad),
            stacklevel=2,
        )
    base = [
        "run_dir",
        "task",
        "teacher",
        "student",
        "mode",
        "window",
        "seed",
        "scale",
        "is_teacher",
        "size_pct",
        "spd",
    ]
    return pd.DataFrame(rows, columns=None if rows else base)


def _run_row(path: Path) -> dict:
    metrics = json.loads(path.read_text())
    if not isinstance(metrics, dict):
        raise ValueError("top level is not an object")
    missing = [k for k in REQUIRED_KEYS if k not in metrics]
    if missing:
        raise ValueError(f"missing key(s) {missing}")
    if not isinstance(metrics["scores"], dict):
        raise ValueError("'scores' is not an object")
    speed = metrics.get("speed") or {}
    row = {
        "run_dir": str(path.parent),
        "task": str(metrics["task"]),
        "teacher": metrics.get("teacher"),
        "student": _student_name(metrics),
        "mode": str(metrics["mode"]),
        "window": None if metrics.get("window") is None else int(metrics["window"]),
        "seed": metrics.get("seed"),
        "scale": metrics.get("scale"),
        "is_teacher": bool(metrics.get("is_teacher", False)),
        "size_pct": _number(metrics.get("size_pct")),
        "spd": _number(speed.get("spd") if isinstance(speed, dict) else None),
        "ablation": any(bool(v) for v in (metrics.get("ablation") or {}).values()) or _other_lr(metrics),
        "kind": (metrics.get("config") or {}).get("adapter_kind") or "dense",
    }
    for name, value in metrics["scores"].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            row[f"score.{name}"] = float(value)
    return row


def _other_lr(metrics: dict) -> bool:
    """True when the run's phase-3 learning rates differ from today's defaults of its mode (a run made before
    a default moved, e.g. HEAD_LR): such a run is a variant, kept out of Table 1 like an lr override."""
    saved, mode, task = metrics.get("phase3_lr"), metrics.get("mode"), metrics.get("task")
    if not isinstance(saved, dict) or mode not in MODES or task not in TASKS:
        return False
    try:
        default = phase3_config(mode, task, scale_config(metrics.get("scale") or "smoke")).lr
    except ValueError:
        return False
    return saved != default and not (metrics.get("ablation") or {}).get("lr_override")


def _student_name(metrics: dict) -> str | None:
    """``minilm-l6`` or, for a student cut to some layers, ``minilm-l6:0,1`` (the name ``alad bench`` uses)."""
    layers = metrics.get("student_layers")
    student = metrics.get("student")
    return f"{student}:{','.join(map(str, layers))}" if layers and student else student


def student_label(student: str) -> str:
    """Short name for tables: the directory name of a student given by path, the alias otherwise."""
    return Path(student).name if ("/" in student or os.sep in student) else student


def attach_speed(runs: pd.DataFrame, bench: dict | str | os.PathLike, device: str = "cpu") -> pd.DataFrame:
    """Fill the Spd column from an ``alad bench`` JSON: speed-up over M_L of the run's student (+ adapter of
    the run's window), matched by model name and window. Runs the benchmark did not cover stay blank, and so
    do runs with another teacher than the benchmark's (a speed-up over another model is not theirs)."""
    if not isinstance(bench, dict):
        bench = json.loads(Path(bench).read_text())
    bench_teacher = (bench.get("teacher") or {}).get("name")
    spd = {}
    for row in bench.get("rows", []):
        if row.get("device") == device:
            window = None if row.get("window") is None else int(row["window"])
            kind = None if window is None else (row.get("kind") or "dense")  # rows without a kind are dense
            spd[(row["model"], window, kind)] = row["spd"]
    runs = runs.copy()
    for i, run in runs.iterrows():
        if not math.isnan(run["spd"]) or (bench_teacher is not None and run["teacher"] != bench_teacher):
            continue
        model = run["teacher"] if run["is_teacher"] else run["student"]
        window = None if pd.isna(run["window"]) else int(run["window"])
        kind = None if window is None else (run.get("kind") or "dense")
        runs.loc[i, "spd"] = spd.get((model, window, kind), math.nan)
    return runs


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


# --------------------------------------------------------------------------------------------------
# Aggregating and formatting
# --------------------------------------------------------------------------------------------------


def _group_of(mode: str, is_teacher: bool) -> str | None:
    for label, g_mode, g_teacher, _ in GROUPS:
        if mode == g_mode and bool(is_teacher) == g_teacher:
            return label
    return None


def pick_scale(df: pd.DataFrame, scale: str | None) -> pd.DataFrame:
    """Keep one scale: the one asked for, else the largest present (mixing smoke and full numbers is wrong)."""
    present = [s for s in df["scale"].dropna().unique()]
    if scale is not None:
        return df[df["scale"] == scale]
    if len(present) <= 1:
        return df
    largest = max(present, key=lambda s: SCALES.index(s) if s in SCALES else -1)
    warnings.warn(
        f"runs of several scales {sorted(present)}: tabulating scale={largest!r} only", stacklevel=3
    )
    return df[df["scale"] == largest]


def drop_ablations(df: pd.DataFrame, caller: str) -> pd.DataFrame:
    """Runs without ablation switches (skip phase 1/2, random adapter, another lr); warns how many it drops."""
    if "ablation" not in df:
        return df
    ablations = df["ablation"].fillna(False).astype(bool)
    if ablations.any():
        warnings.warn(f"{caller}: leaving out {int(ablations.sum())} ablation run(s) (not part of the table)",
                      stacklevel=3)
    return df[~ablations]


def summarize_runs(df: pd.DataFrame, scale: str | None = None) -> pd.DataFrame:
    """Long numeric frame: one row per (table row, score column) with mean, std, min, max, n over seeds.

    Columns: teacher, model, group, window, order, column, mean, std, min, max, n -- plus rows with
    column "Sz" and "Spd" (means over all of the table row's runs). Runs whose mode has no group are dropped
    with a warning; runs with the same configuration and seed count once (the last one read).
    """
    if df.empty:
        return pd.DataFrame(
            columns=[
                "teacher",
                "model",
                "group",
                "window",
                "order",
                "column",
                "mean",
                "std",
                "min",
                "max",
                "n",
            ]
        )
    df = drop_ablations(pick_scale(df, scale), "summarize_runs").copy()
    df["group"] = [_group_of(m, t) for m, t in zip(df["mode"], df["is_teacher"])]
    unknown = df["group"].isna()
    if unknown.any():
        warnings.warn(
            f"summarize_runs: ignoring {int(unknown.sum())} run(s) with unknown mode(s) {sorted(set(df.loc[unknown, 'mode']))}",
            stacklevel=2,
        )
        df = df[~unknown]
    df["model"] = np.where(df["is_teacher"], df["teacher"], df["student"])
    df["model"] = df["model"].fillna("?")
    df["teacher"] = df["teacher"].fillna("?")
    windowed = {label: uses for label, _, _, uses in GROUPS}
    df["window"] = [w if windowed[g] else None for w, g in zip(df["window"], df["group"])]
    df["wkey"] = df["window"].fillna(-1).astype(int)
    key = ["teacher", "model", "group", "wkey"]
    df = df.drop_duplicates([*key, "task", "seed"], keep="last")

    records = []
    for (teacher, model, group, wkey), rows in df.groupby(key, sort=False, dropna=False):
        base = {"teacher": teacher, "model": model, "group": group, "window": None if wkey < 0 else int(wkey)}
        for task, score, label, factor in score_columns():
            col = f"score.{score}"
            if col not in rows.columns:
                continue
            values = rows.loc[rows["task"] == task, col].dropna().to_numpy() * factor
            if len(values):
                records.append({**base, "column": label, **_stats(values)})
        for label, col in (("Sz", "size_pct"), ("Spd", "spd")):
            values = rows[col].dropna().to_numpy()
            if len(values):
                records.append({**base, "column": label, **_stats(values)})
    out = pd.DataFrame(records)
    out["order"] = _row_order(out)
    return out.sort_values(["order"], kind="stable").reset_index(drop=True)


def _stats(values: np.ndarray) -> dict:
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "min": float(values.min()),
        "max": float(values.max()),
        "n": int(len(values)),
    }


def _row_order(out: pd.DataFrame) -> list[int]:
    """Rank of each record's table row: the teacher's rows first, then each student's block (first-seen order)
    in group order, windows ascending."""
    labels = [g[0] for g in GROUPS]
    teacher_groups = [g[0] for g in GROUPS if g[2]]  # the teacher's rows (fine-tuned, head only) come first
    students = list(dict.fromkeys(out.loc[~out["group"].isin(teacher_groups), "model"]))
    teachers = list(dict.fromkeys(out["teacher"]))
    keys = [
        (
            -1 if group in teacher_groups else students.index(model),
            teachers.index(teacher),
            labels.index(group),
            -1 if window is None or pd.isna(window) else int(window),
        )
        for teacher, model, group, window in zip(out["teacher"], out["model"], out["group"], out["window"])
    ]
    rank = {k: i for i, k in enumerate(sorted(set(keys)))}
    return [rank[k] for k in keys]


def format_cell(
    mean: float, std: float, lo: float, hi: float, n: int, spread: str = "auto", digits: int = 2
) -> str:
    """ "m" (1 seed), "m [lo–hi]" (2 seeds or spread="range"), "m ± sd" (3+ seeds or spread="std")."""
    if spread not in ("auto", "std", "range"):
        raise ValueError(f"format_cell: spread must be 'auto', 'std' or 'range', got {spread!r}")
    m = f"{mean:.{digits}f}"
    if n < 2:
        return m
    if spread == "range" or (spread == "auto" and n == 2):
        return f"{m} [{lo:.{digits}f}–{hi:.{digits}f}]"
    return f"{m} ± {std:.{digits}f}"


def results_table(
    df: pd.DataFrame, spread: str = "auto", digits: int = 2, scale: str | None = None
) -> pd.DataFrame:
    """Table 1 layout (strings) from ``collect_runs`` output; see the module docstring for groups and units.

    Columns: [Teacher,] Model, Setting, W, one per present score column, Sz, Spd, Seeds. ``Seeds`` is the
    largest seed count of the row's cells; a cell with fewer seeds carries "(n=k)". Empty cells are "".
    """
    summary = summarize_runs(df, scale=scale)
    score_labels = [label for _, _, label, _ in score_columns() if label in set(summary.get("column", []))]
    columns = ["Model", "Setting", "W", *score_labels, "Sz", "Spd", "Seeds"]
    several_teachers = summary["teacher"].nunique() > 1 if len(summary) else False
    if several_teachers:
        columns.insert(0, "Teacher")
    rows = []
    for _, cells in summary.groupby("order", sort=True):
        teacher, model, group, window = cells.iloc[0][["teacher", "model", "group", "window"]]
        score_cells = cells[cells["column"].isin(score_labels)]
        n_row = int(score_cells["n"].max()) if len(score_cells) else int(cells["n"].max())
        row = {
            "Teacher": teacher,
            "Model": model_label(model),
            "Setting": group,
            "W": "" if window is None or pd.isna(window) else f"W{int(window)}",
            "Seeds": str(n_row),
        }
        for _, c in cells.iterrows():
            if c["column"] == "Sz":  # same model in every seed: size/speed are shown as plain means
                row["Sz"] = f"{c['mean']:.1f}"
            elif c["column"] == "Spd":
                row["Spd"] = f"{c['mean']:.{digits}f}"
            else:
                text = format_cell(c["mean"], c["std"], c["min"], c["max"], c["n"], spread, digits)
                row[c["column"]] = text + (f" (n={c['n']})" if c["n"] < n_row else "")
        rows.append(row)
    return pd.DataFrame([{c: row.get(c, "") for c in columns} for row in rows], columns=columns)


def write_table(
    runs_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, spread: str = "auto",
    bench: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """``alad table RUNS_DIR``: write results.md, results.csv, results.html to ``out_dir`` (default runs_dir).

    ``bench``: an ``alad bench`` JSON that fills the Spd column. Returns {"md": path, "csv": path,
    "html": path}. Raises ValueError when no readable run is found.
    """
    runs = collect_runs(runs_dir)
    if runs.empty:
        raise ValueError(f"write_table: no readable metrics.json below {runs_dir}")
    if bench is not None:
        runs = attach_speed(runs, bench)
    table = results_table(runs, spread=spread)
    return write_formats(table, Path(out_dir) if out_dir is not None else Path(runs_dir), "results", SPREAD_NOTE)
