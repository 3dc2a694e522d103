"""One row per compressed student: what compression cost and what ALAd gives back.

The paper's Table 1 answers "how good is each setting"; this table answers the compression question side by
side for many students on one task:

    Student | Method | Detail | Layers | Width | MB | Sz | Sz +W | Spd | Spd +W | GFLOPs/tok (student, adapter)
            | <score> head | <score> +W  (for each of the task's two scores)

* "head" is ``alad run --mode head`` (frozen M_C + task head, no adapter): the compressed model as it is.
* "+W" is ``alad run --mode frozen --window W`` (frozen M_C + adapter + head): plug-and-play ALAd.
* Sz comes from the runs (deployed parameters incl. head, % of M_L + head); MB, Spd, speed and FLOPs per token
  come from an ``alad bench`` JSON (same process, same batch) when one is given.
* Method and detail come from the student's ``compression_report.json`` (written by ``alad compress``), looked
  up in the student directory or in a ``reports`` mapping keyed by the directory's name (for runs whose
  student directories are gone, e.g. a committed results folder).

Scores are means over seeds (the table says how many).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from alad_kit.compress._io import REPORT_NAME
from alad_kit.core.config import TASKS
from alad_kit.tasks import DEFAULT_TASK, get_task

from .formats import write_formats
from .table import collect_runs, drop_ablations, pick_scale, student_label

# The score columns of a task are its spec's (Task.score_columns): the same ones Table 1 shows for the task.
NOTE = (
    "head: frozen student + task head, no adapter; +W{w}: frozen student + ALAd window {w} + head. Scores x100 "
    "(QA in %), mean over seeds. Sz: deployed parameters in % of the teacher + head. MB, Spd (speed-up over the "
    "teacher) and GFLOPs per token from `alad bench` on {device}."
)


def method_detail(report: dict | None) -> tuple[str, str]:
    """(method, one-line detail) from a compression report; ("pretrained", "") when there is none."""
    if not report:
        return "pretrained", ""
    method = str(report.get("method", "?"))
    if method in ("asc", "keep_layers"):
        detail = f"kept layers {report.get('kept_layers')} of {report.get('num_layers_original')}"
    elif method == "l1":
        detail = f"{100 * report.get('linear_sparsity', float('nan')):.0f}% of Linear weights zero"
    elif method == "static_int8":
        detail = (f"{100 * report.get('fraction_quantized', float('nan')):.1f}% of Linear weights int8, "
                  f"{report.get('layers_quantized')}/{report.get('layers_total')} layers")
    elif method == "dynamic_int8":
        detail = f"{report.get('linear_layers')} Linear layers int8"
    elif method == "distill":
        detail = (f"{report.get('student_layers')} layers from {report.get('model_name')}, "
                  f"{report.get('steps')} steps, objective {report.get('objective')}")
    else:
        detail = ""
    return method, detail


def _report_for(student: str, reports: dict) -> dict | None:
    path = Path(student) / REPORT_NAME
    if path.is_file():
        return json.loads(path.read_text())
    return reports.get(student_label(student))


def compression_table(
    runs: pd.DataFrame, task: str = DEFAULT_TASK, window: int = 5, bench: dict | None = None,
    reports: dict | None = None, digits: int = 2, scale: str | None = None, device: str = "cpu",
) -> pd.DataFrame:
    """Strings, one row per student that has a ``head`` or ``frozen``/W run for ``task`` (see module doc).

    ``scale``: tabulate runs of this scale (default: the largest present, with a warning when several are);
    ``device``: which of the benchmark's devices the MB/Spd/FLOPs columns come from.
    """
    if task not in TASKS:
        raise ValueError(f"compression_table: unknown task {task!r}; expected one of {sorted(TASKS)}")
    reports = reports or {}
    df = drop_ablations(pick_scale(runs, scale), "compression_table")
    df = df[(df["task"] == task) & ~df["is_teacher"].astype(bool)]
    df = df.drop_duplicates(["student", "mode", "window", "seed"], keep="last")  # a run copied twice counts once
    head = df[df["mode"] == "head"]
    alad = df[(df["mode"] == "frozen") & (df["window"] == window)]
    students = list(dict.fromkeys([*head["student"], *alad["student"]]))
    if not students:
        raise ValueError(f"compression_table: no '{task}' runs in mode head or frozen W{window}")
    bench_rows = {(r["model"], r.get("window")): r for r in (bench or {}).get("rows", [])
                  if r.get("device") == device}
    bench_students = (bench or {}).get("students", {})
    # A benchmark may name a student by its path (``alad bench``) or by a short name (``benchmark({"asc": ...})``).
    bench_name = {s: s if s in bench_students else student_label(s) for s in students}
    # the benchmark's order (the order its user listed the students in) first, then the rest by run path
    order = list(bench_students)
    students.sort(key=lambda s: order.index(bench_name[s]) if bench_name[s] in order else len(order))

    rows = []
    for student in students:
        method, detail = method_detail(_report_for(student, reports))
        name = bench_name[student]
        info = bench_students.get(name, {})
        alone, with_adapter = bench_rows.get((name, None), {}), bench_rows.get((name, window), {})
        row = {
            "Student": student_label(student), "Method": method, "Detail": detail,
            "Layers": info.get("num_layers", ""), "Width": info.get("hidden_size", ""),
            "MB": _fmt(info.get("disk_mb"), 1),
            "Sz": _fmt(_mean(head[head["student"] == student]["size_pct"]), 1),
            f"Sz +W{window}": _fmt(_mean(alad[alad["student"] == student]["size_pct"]), 1),
            "Spd": _fmt(alone.get("spd"), 2), f"Spd +W{window}": _fmt(with_adapter.get("spd"), 2),
            "GFLOPs/tok": _fmt(_giga(info.get("flops_per_token")), 4),
            f"adapter W{window} GFLOPs/tok": _fmt(_giga(with_adapter.get("adapter_flops_per_token")), 4),
        }
        for key, label, factor in get_task(task).score_columns:
            for setting, runs_of in (("head", head), (f"+W{window}", alad)):
                mine = runs_of[runs_of["student"] == student]
                col = f"score.{key}"
                row[f"{label} {setting}"] = _fmt(_mean(mine[col], factor) if col in mine else None, digits)
        row["Seeds"] = str(max(int((head["student"] == student).sum()), int((alad["student"] == student).sum())))
        rows.append(row)
    return pd.DataFrame(rows)


def _mean(values: pd.Series, factor: float = 1.0) -> float | None:
    values = values.dropna()
    return float(values.mean()) * factor if len(values) else None


def _giga(value) -> float | None:
    return None if value is None else value / 1e9


def _fmt(value, digits: int) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _bench_device(bench: dict) -> str:
    env, settings = bench.get("environment", {}), bench.get("settings", {})
    return (f"{env.get('cpu', '?')} CPU, {env.get('torch_num_threads', '?')} threads, "
            f"batch {settings.get('batch_size', '?')} x {settings.get('seq_len', '?')} tokens")


def write_compression_table(
    runs_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, task: str = DEFAULT_TASK, window: int = 5,
    bench: str | os.PathLike | None = None, reports: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """``alad table RUNS_DIR --compression``: write compression.md / .csv / .html (atomically)."""
    bench_data = json.loads(Path(bench).read_text()) if bench is not None else None
    report_data = json.loads(Path(reports).read_text()) if reports is not None else None
    table = compression_table(collect_runs(runs_dir), task=task, window=window, bench=bench_data,
                              reports=report_data)
    device = _bench_device(bench_data) if bench_data else "(no bench given)"
    note = NOTE.format(w=window, device=device)
    out = Path(out_dir) if out_dir is not None else Path(runs_dir)
    return write_formats(table, out, "compression", note, title="Compressed students")
