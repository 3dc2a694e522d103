"""Several runs at once, for notebooks: run a list of configurations, reusing the ones already finished.

A notebook re-executed from the top (or a later notebook that needs an earlier one's runs) should not pay
for phase 3 again when ``cfg.out/metrics.json`` already holds the result of the same configuration:
``run_or_reuse`` reads it back instead. Phases 1-2 are cached by ``alad_kit.pipeline.run`` itself, so a rerun that
does happen is cheap too. ``sweep`` runs many configurations and returns one flat row per run.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import MISSING, asdict, fields
from pathlib import Path

import pandas as pd

from alad_kit.core import rundir
from alad_kit.core.config import RunConfig, phase3_config, scale_config
from alad_kit.core.progress import progress as tqdm

# Fields that say where a run writes or computes, not what it computes: a run reused across them is the same run.
PLACE_FIELDS = ("out", "cache_dir", "device", "use_cache")
log = logging.getLogger(__name__)


def env_path(name: str, default: str | None = None, parents: int = 2) -> str | None:
    """Environment variable ``name`` as an absolute path (``default`` when unset or empty; None stays None).

    A relative value is tried against the working directory, then against up to ``parents`` of its parent
    directories: CI exports paths relative to the repository root (``ALAD_DATA_DIR=../shared/data``) while
    notebooks run with ``notebooks/`` as their working directory. A default is returned as given (it may be
    a name such as ``"wnut16"``). FileNotFoundError names every place tried when the path exists nowhere.
    """
    value = os.environ.get(name) or None
    if value is None:
        return default
    path = Path(value).expanduser()
    if path.is_absolute():
        if not path.exists():
            raise FileNotFoundError(f"{name}={value!r} does not exist")
        return str(path)
    bases = [Path.cwd(), *list(Path.cwd().parents)[:parents]]
    for base in bases:
        if (base / path).exists():
            return str((base / path).resolve())
    tried = ", ".join(str(b / path) for b in bases)
    raise FileNotFoundError(f"{name}={value!r} exists nowhere; tried {tried}")


def config_key(cfg: RunConfig | dict) -> dict:
    """The configuration as metrics.json stores it (JSON types), minus ``PLACE_FIELDS`` and ``extra``.

    A stored configuration lacking a field that ``RunConfig`` has gained since gets that field's default:
    a run made before the field existed is the run the default describes.
    """
    defaults = {f.name: f.default for f in fields(RunConfig) if f.default is not MISSING}
    data = asdict(cfg) if isinstance(cfg, RunConfig) else defaults | dict(cfg)
    data = {k: v for k, v in data.items() if k not in PLACE_FIELDS and k != "extra"}
    return json.loads(json.dumps(data, default=str))  # tuples -> lists, as in the written file


def same_scale_budgets(metrics: dict, cfg: RunConfig) -> bool:
    """False when ``metrics`` was made under other budgets than ``cfg`` gets today: another preset of
    ``cfg.scale``, or other default phase-3 learning rates (e.g. before HEAD_LR moved). Such a run is stale.
    Runs stored before metrics.json recorded the budgets (no ``scale_config`` / ``phase3_lr``) are taken as
    they are."""
    scale = scale_config(cfg.scale)
    saved = metrics.get("scale_config")
    if saved is not None and saved != json.loads(json.dumps(asdict(scale))):
        return False
    saved_lr = metrics.get("phase3_lr")
    want_lr = phase3_config(cfg.mode, cfg.task, scale, lr=cfg.lr, part_lr=cfg.part_lr).lr
    return saved_lr is None or saved_lr == want_lr


def finished_metrics(cfg: RunConfig) -> dict | None:
    """``cfg.out/metrics.json`` when it exists and was written by the same configuration, else None."""
    path = rundir.metrics_path(cfg.out)
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a damaged file is the same as none: the run is redone
    if not isinstance(metrics, dict) or "config" not in metrics:
        return None
    if not same_scale_budgets(metrics, cfg):
        return None
    return metrics if config_key(metrics["config"]) == config_key(cfg) else None


def run_or_reuse(cfg: RunConfig, rerun: bool = False, **run_kwargs) -> dict:
    """The run's metrics: read back when ``cfg.out`` holds a finished run of ``cfg``, else ``run(cfg)``.

    A directory holding a *different* configuration is overwritten by the new run. ``rerun=True`` always runs.
    """
    if not rerun:
        metrics = finished_metrics(cfg)
        if metrics is not None:
            log.info("reusing the finished run in %s", cfg.out)
            return metrics
    from .run import run

    return run(cfg, **run_kwargs)


def metrics_row(metrics: dict, run_dir: str | None = None) -> dict:
    """One flat row of a run's metrics: identity, numeric scores, size, alignment MSE/cosine and minutes."""
    row = {
        "run_dir": run_dir if run_dir is not None else (metrics.get("config") or {}).get("out"),
        "task": metrics.get("task"),
        "student": metrics.get("student"),
        "student_layers": _layers(metrics.get("student_layers")),
        "mode": metrics.get("mode"),
        "window": metrics.get("window"),
        "seed": metrics.get("seed"),
        "scale": metrics.get("scale"),
        "is_teacher": bool(metrics.get("is_teacher", False)),
    }
    for name, value in (metrics.get("scores") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            row[name] = float(value)
    row["size_pct"] = metrics.get("size_pct", math.nan)
    for phase, values in (metrics.get("alignment") or {}).items():
        row[f"mse_{phase}"] = values.get("mse", math.nan)
        row[f"cosine_{phase}"] = values.get("cosine", math.nan)
    row["minutes"] = (metrics.get("timings") or {}).get("total", math.nan) / 60
    return row


def _layers(layers) -> str:
    return "all" if not layers else ",".join(str(i) for i in layers)


def sweep(configs: Iterable[RunConfig], rerun: bool = False, **run_kwargs) -> pd.DataFrame:
    """Run (or reuse, see ``run_or_reuse``) every configuration; one ``metrics_row`` per run, in order.

    Two configurations writing to the same ``out`` would overwrite each other, so that is refused up front.
    """
    configs = list(configs)
    outs = [str(Path(c.out).resolve()) for c in configs]
    clashes = sorted({o for o in outs if outs.count(o) > 1})
    if clashes:
        raise ValueError(f"sweep: several configurations write to the same out directory: {clashes}")
    rows = []
    with tqdm(configs, desc="sweep", unit="run", leave=True) as bar:  # "3/6": run 3 of 6
        for k, cfg in enumerate(bar, start=1):
            bar.set_postfix_str(f"{cfg.task} {cfg.mode} seed{cfg.seed}")
            log.info("sweep: run %d of %d: %s", k, len(configs), cfg.out)
            rows.append(metrics_row(run_or_reuse(cfg, rerun=rerun, **run_kwargs), run_dir=cfg.out))
    return pd.DataFrame(rows)
