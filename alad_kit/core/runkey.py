"""A run's identity and the one rule for "is this run finished?", used by ``alad run``, sweeps and studies.

* :func:`run_key` -- the configuration as ``metrics.json`` stores it (JSON types), minus the fields that say
  where a run writes or computes (``PLACE_FIELDS``) and ``extra``. Two configurations with the same key are
  the same run. Paths to a study's own files (its fine-tuned teacher, its layer probe) are named relative to
  the study folder, which may move.
* :func:`run_state` -- what ``cfg.out`` holds: this run finished (its metrics), nothing, or something else
  (a one-line reason). :func:`is_finished` is its yes/no. A run is finished when ``metrics.json`` is
  readable, records a configuration with this run key, and was made under the budgets ``cfg.scale`` has
  today. What a caller does with "something else" is its policy: a sweep runs again, a study stops.
* :func:`checkpoint_digest` -- the name phase-3 checkpoints carry (``--resume`` refuses another's).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from .checkpoint import digest
from .config import RunConfig, phase3_config, scale_config
from .rundir import metrics_path

# Fields that say where a run writes or computes, not what it computes: a run reused across them is the same run.
PLACE_FIELDS = ("out", "cache_dir", "device", "use_cache")
# Fields that may name a file of the run's own study (DIR/<row>/seed<k>): named relative to DIR in the key.
STUDY_PATH_FIELDS = ("teacher_finetuned", "teacher_probe")
STUDY_PREFIX = "<study>"


def run_key(cfg: RunConfig | dict) -> dict:
    """The configuration that makes a run what it is (see the module doc), as a JSON dictionary.

    A stored configuration lacking a field that ``RunConfig`` has gained since gets that field's default:
    a run made before the field existed is the run the default describes.
    """
    defaults = {f.name: f.default for f in fields(RunConfig) if f.default is not MISSING}
    data = asdict(cfg) if isinstance(cfg, RunConfig) else defaults | dict(cfg)
    out = Path(data.get("out") or "")
    key = {k: v for k, v in data.items() if k not in PLACE_FIELDS and k != "extra"}
    if len(out.parents) > 1:  # DIR/<row>/seed<k>: a path inside DIR is named relative to DIR
        study = out.parents[1]
        for name in STUDY_PATH_FIELDS:
            value = key.get(name)
            if value is not None and Path(value).is_relative_to(study) and study != Path("."):
                key[name] = str(Path(STUDY_PREFIX) / Path(value).relative_to(study))
    return json.loads(json.dumps(key, default=str))  # tuples -> lists, as in the written file


def checkpoint_digest(cfg: RunConfig) -> str:
    """The configuration name phase-3 checkpoints record: the run key plus ``cache_dir`` and ``use_cache``,
    with the absolute paths as given (the digest phase-3 checkpoints always had, so older ones resume)."""
    return digest({k: v for k, v in asdict(cfg).items() if k not in ("out", "extra", "device")})


def same_budgets(metrics: dict, cfg: RunConfig) -> bool:
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


@dataclass(frozen=True)
class RunState:
    metrics: dict | None  # metrics.json of the finished run of the configuration (None: not finished)
    problem: str | None  # why the metrics.json in the folder is not this run's (None: finished, or none there)


def run_state(cfg: RunConfig) -> RunState:
    """What ``cfg.out`` holds: this run finished, nothing, or another run / a damaged file (``problem``)."""
    path = metrics_path(cfg.out)
    if not path.is_file():
        return RunState(None, None)
    try:
        metrics = json.loads(path.read_text())
    except (ValueError, OSError):
        return RunState(None, f"{path}: unreadable metrics.json")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("config"), dict):
        return RunState(None, f"{path}: metrics.json has no 'config'")
    if not same_budgets(metrics, cfg):
        return RunState(None, f"{path}: made under other {cfg.scale!r} budgets (an older preset or phase-3 lr "
                              "default)")
    want, have = run_key(cfg), run_key(metrics["config"])
    if want != have:
        diff = ", ".join(f"{k}: {have.get(k)!r} != {want.get(k)!r}" for k in want if have.get(k) != want.get(k))
        return RunState(None, f"{path}: a run of another configuration ({diff})")
    return RunState(metrics, None)


def is_finished(cfg: RunConfig) -> bool:
    """True when ``cfg.out`` holds the finished run of ``cfg`` (see :func:`run_state`)."""
    return run_state(cfg).metrics is not None
