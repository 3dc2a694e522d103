"""Committed results instead of training: a notebook's runs read from a committed ``alad study``.

At the ``tiny`` scale a notebook trains in minutes, but some claims (aligned against a random adapter, the gap
to the teacher) only show at the ``cpu`` scale, whose runs take a quarter of an hour each. Their light files
(``metrics.json``, ``history.json``) are committed under ``results/cpu-study/<task>-minilm-2l/<row>/seed<k>/``.
:func:`load_committed` finds, for each configuration of a notebook, the committed run of the same kind (same
task, mode, window, ablation switches and learning rates; see ``KIND_FIELDS``) and seed, copies those two
files into the configuration's ``out`` folder and returns the rows ``sweep`` would have returned. It trains
nothing: a configuration the study lacks is reported and gets a row without scores. The copies hold no model,
so what needs the weights (predictions, UMAPs, the window explorer) still needs a run.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from alad_kit.core.config import MODES, RunConfig
from alad_kit.core.io import atomic_path
from alad_kit.core.rundir import history_path, metrics_files, metrics_path, read_metrics

from .experiments import metrics_row

log = logging.getLogger(__name__)

# What makes two runs the same kind of run whatever their scale, data, models or folders.
KIND_FIELDS = ("task", "mode", "is_teacher_run", "skip_phase1", "skip_phase2", "random_adapter", "adapter_kind",
               "adapter_hidden", "teacher_layer", "teacher_finetuned", "teacher_probe", "lora_r", "lora_alpha",
               "lr", "head_lr", "adapter_lr", "student_lr", "lora_lr")


def run_kind(config: RunConfig | dict) -> dict:
    """The ``KIND_FIELDS`` of a configuration (a stored one lacking a field gets RunConfig's default), plus the
    window where the mode has an adapter. ``teacher_finetuned`` / ``teacher_probe`` count as set or not."""
    data = asdict(config) if isinstance(config, RunConfig) else dict(config)
    defaults = asdict(RunConfig(task=data["task"], teacher="-", student="-"))
    kind = {name: data.get(name, defaults[name]) for name in KIND_FIELDS}
    kind["teacher_finetuned"] = kind["teacher_finetuned"] is not None
    kind["teacher_probe"] = kind["teacher_probe"] is not None
    kind["window"] = data.get("window", defaults["window"]) if MODES[kind["mode"]].use_adapter else None
    return kind


def _study_index(study: str | Path) -> list[tuple[int, dict, Path]]:
    """(seed, run kind, folder) of every run of ``study``, each metrics.json read once."""
    index = []
    for path in metrics_files(study):
        stored = read_metrics(path.parent).get("config") or {}
        index.append((stored.get("seed"), run_kind(stored), path.parent))
    return index


def find_committed(study: str | Path, cfg: RunConfig, index: list | None = None) -> Path | None:
    """The run folder of ``study`` (``<row>/seed<k>``) of the same kind as ``cfg`` and its seed, or None
    (``index``: ``_study_index(study)``, to look up many configurations with one read of the study)."""
    want = run_kind(cfg)
    for seed, kind, folder in index if index is not None else _study_index(study):
        if seed == cfg.seed and kind == want:
            return folder
    return None


def load_committed(configs: Iterable[RunConfig], study: str | Path) -> pd.DataFrame:
    """Copy the committed run matching each configuration into its ``out`` folder (see the module doc) and
    return one ``metrics_row`` per configuration, in order; one without a committed run has no scores."""
    study = Path(study)
    if not study.is_dir():
        raise FileNotFoundError(f"{study}: no committed study here (results/cpu-study/<task>-minilm-2l)")
    index = _study_index(study)
    rows = []
    for cfg in configs:
        source = find_committed(study, cfg, index)
        if source is None:
            log.warning("%s: the committed study %s has no run of this kind (mode %s, seed %d); its row stays empty",
                        Path(cfg.out).name, study, cfg.mode, cfg.seed)
            rows.append({"run_dir": cfg.out, "task": cfg.task, "mode": cfg.mode, "window": cfg.window,
                         "seed": cfg.seed, "size_pct": math.nan, "minutes": math.nan})
            continue
        _copy_run(source, Path(cfg.out))
        rows.append(metrics_row(read_metrics(cfg.out), run_dir=cfg.out))
    return pd.DataFrame(rows)


def _copy_run(source: Path, out: Path) -> None:
    """metrics.json and history.json of ``source`` into ``out``, each whole or absent."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (metrics_path, history_path):
        if name(source).is_file():
            with atomic_path(name(out)) as tmp:
                shutil.copyfile(name(source), tmp)
