"""The run directory: what ``alad run`` leaves in ``OUT/``, named in one place.

=========================  ==========================================================================
``metrics.json``           scores, sizes, alignment, timings, config, versions and the record of what
                           the run built (``pipeline.record``); written last: a run directory with it
                           is a finished run (of its configuration: ``core.runkey``)
``history.json``           loss curves of the three phases
``probes.csv|parquet``     per-token alignment error on held-out text (``analysis.probes``)
``umap.csv|parquet``       a UMAP of the phases' representations (``ui.phase_models``)
``checkpoints/``           the phases' resumable checkpoints (``training.trainer``)
``model/``                 the deployable model (``models.deploy``; ``alad predict / evaluate / export``)
``teacher_finetuned/``     only for teacher runs: the task-fine-tuned M_L
=========================  ==========================================================================

Every file is written atomically (``core.io``), in an order that never pairs the files of two runs: a run
into a finished folder leaves the old run whole until it has its own results, then removes the old
``metrics.json`` (the folder is no longer a finished run) and the old run's other records (:func:`clear_record`),
replaces ``model/`` in one step and writes its own files, ``metrics.json`` last. ``core.locks.sole_owner`` keeps
a second run out of the folder meanwhile. The pipeline writes run directories; tables, reports,
widgets and studies read them back through :func:`metrics_files` and :func:`read_metrics`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .io import write_json_atomic

METRICS_NAME = "metrics.json"
HISTORY_NAME = "history.json"
PROBES_STEM = "probes"  # RUN_DIR/probes.csv (or .parquet): probe rows (analysis.probes.PROBE_COLUMNS)
UMAP_STEM = "umap"  # RUN_DIR/umap.csv (or .parquet): umap_projection rows (+ optional "phase")
FRAME_FORMATS = ("csv", "parquet")
CHECKPOINTS_DIR = "checkpoints"
MODEL_DIR = "model"
TEACHER_DIR = "teacher_finetuned"


def metrics_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / METRICS_NAME


def history_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / HISTORY_NAME


def checkpoints_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR


def model_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / MODEL_DIR


def teacher_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / TEACHER_DIR


def frame_paths(run_dir: str | os.PathLike, stem: str) -> list[Path]:
    """``run_dir/<stem>.csv`` and ``.parquet``, whichever exist (a frame is stored in one of the two)."""
    return [p for p in (Path(run_dir) / f"{stem}.{fmt}" for fmt in FRAME_FORMATS) if p.is_file()]


def write_metrics(run_dir: str | os.PathLike, metrics: dict) -> Path:
    return write_json_atomic(metrics_path(run_dir), metrics)


def write_history(run_dir: str | os.PathLike, history) -> Path:
    return write_json_atomic(history_path(run_dir), history)


def clear_record(run_dir: str | os.PathLike) -> None:
    """Remove a previous run's metrics.json (first: the folder stops being a finished run), history and frames.

    ``model/`` and ``teacher_finetuned/`` stay until the new run replaces them whole; checkpoints stay for --resume."""
    run_dir = Path(run_dir)
    metrics_path(run_dir).unlink(missing_ok=True)
    history_path(run_dir).unlink(missing_ok=True)
    for stem in (PROBES_STEM, UMAP_STEM):
        for path in frame_paths(run_dir, stem):
            path.unlink()


def read_json(path: str | os.PathLike):
    """The JSON in ``path``; a ValueError naming the file when it is not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON ({err})") from err


def read_metrics(run_dir: str | os.PathLike) -> dict:
    """``run_dir/metrics.json``; ValueError when it is unreadable or not a run's metrics (no ``scores``)."""
    metrics = read_json(metrics_path(run_dir))
    if not isinstance(metrics, dict) or "scores" not in metrics:
        raise ValueError(f"{metrics_path(run_dir)}: not a run's metrics (no 'scores')")
    return metrics


def metrics_files(root: str | os.PathLike) -> list[Path]:
    """Every run's ``metrics.json`` below ``root`` (recursively), sorted by path."""
    return sorted(Path(root).rglob(METRICS_NAME))
