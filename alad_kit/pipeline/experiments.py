"""Several runs at once, for notebooks: run a list of configurations, reusing the ones already finished.

A notebook re-executed from the top (or a later notebook that needs an earlier one's runs) should not pay
for phase 3 again when ``cfg.out/metrics.json`` already holds the result of the same run (same run key):
``run_or_reuse`` reads it back instead. Phases 1-2 are cached by ``alad_kit.pipeline.run`` itself, so a rerun that
does happen is cheap too. ``sweep`` runs many configurations and returns one flat row per run.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from alad_kit.core.config import RunConfig
from alad_kit.core.progress import progress as tqdm
from alad_kit.core.runkey import run_state

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


def run_or_reuse(cfg: RunConfig, rerun: bool = False, **run_kwargs) -> dict:
    """The run's metrics: read back when ``cfg.out`` holds a finished run of ``cfg``, else ``run(cfg)``.

    Finished means :func:`alad_kit.core.runkey.run_state` says so (the rule ``alad study`` uses too). A
    directory holding another run (or a damaged metrics.json) is overwritten by the new run, with a line
    saying why. ``rerun=True`` always runs.
    """
    if not rerun:
        state = run_state(cfg)
        if state.metrics is not None:
            log.info("reusing the finished run in %s", cfg.out)
            return state.metrics
        if state.problem is not None:
            log.info("%s; running it again", state.problem)
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
