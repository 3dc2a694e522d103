"""What training callbacks receive, and a callback that writes it through accelerate's trackers.

``train_phase`` calls its callbacks after every optimizer step and, when the phase evaluates, once more
after each epoch's validation. A callback taking one argument receives a :class:`StepInfo`; one taking two
(the original form, ``cb(phase_name, step)``) is called after every step only, as before.

:class:`RunTracker` is such a callback: ``alad run --log-with tensorboard`` writes ``<phase>/loss`` and
``<phase>/lr/<part>`` per step and ``<phase>/validation`` per epoch under ``OUT/logs/``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

LOGS_DIR = "logs"  # OUT/logs/<TRACKER_RUN>/ holds the tracker's files (TensorBoard event files)
TRACKER_RUN = "alad"  # accelerate's project name: the folder under OUT/logs


@dataclass(frozen=True)
class StepInfo:
    phase: str  # phase name (phase1 | phase2 | phase3)
    step: int  # optimizer steps taken in this phase so far
    loss: float  # loss of the last step (mean over processes)
    lr: dict  # {part: current learning rate} after the scheduler's step
    metrics: dict = field(default_factory=dict)  # {"validation": score} at an epoch's end, empty otherwise
    epoch: int = 0  # 1-based epoch the step belongs to (or that just ended)
    event: str = "step"  # "step" after an optimizer step, "epoch" after an epoch's validation


def takes_step_info(callback: Callable) -> bool:
    """True for a callback with one required positional parameter (``cb(info)``), False for ``cb(name, step)``."""
    try:
        params = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: the original form
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in positional and p.default is inspect.Parameter.empty]
    return len(required) == 1


def notify(callbacks: Iterable[Callable], info: StepInfo) -> None:
    """Call every callback in the form it accepts; two-argument callbacks only hear of steps."""
    for callback in callbacks:
        if takes_step_info(callback):
            callback(info)
        elif info.event == "step":
            callback(info.phase, info.step)


def current_lr(optimizer) -> dict:
    """{part: learning rate} of an optimizer built by ``trainer.parameter_groups`` (first group of each part)."""
    rates: dict = {}
    for group in optimizer.param_groups:
        rates.setdefault(group.get("part", "all"), float(group["lr"]))
    return rates


class RunTracker:
    """A :class:`StepInfo` callback writing through ``Accelerator(log_with=..., project_dir=OUT/logs)``.

    The Accelerator is made at the first step, after the trainer has set up the device, so it joins that
    state instead of choosing its own. Call :meth:`close` at the end (``end_training`` flushes the files).
    """

    def __init__(self, log_with: str, out: str | Path, config: Mapping | None = None):
        self.log_with, self.project_dir = log_with, Path(out) / LOGS_DIR
        self.config = _hparams(config or {})
        self.accelerator = None

    def __call__(self, info: StepInfo) -> None:
        if self.accelerator is None:
            from accelerate import Accelerator

            self.accelerator = Accelerator(log_with=self.log_with, project_dir=str(self.project_dir))
            self.accelerator.init_trackers(TRACKER_RUN, config=self.config)
        if info.event == "epoch":
            values = {f"{info.phase}/{name}": float(v) for name, v in info.metrics.items()}
            self.accelerator.log(values, step=info.epoch)
        else:
            values = {f"{info.phase}/loss": info.loss, **{f"{info.phase}/lr/{p}": v for p, v in info.lr.items()}}
            self.accelerator.log(values, step=info.step)

    def close(self) -> None:
        if self.accelerator is not None:
            self.accelerator.end_training()
            self.accelerator = None


def _hparams(config: Mapping) -> dict:
    """Hyper-parameters as the trackers take them: numbers, strings and booleans (others as JSON text)."""
    return {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v, default=str)
            for k, v in config.items() if v is not None}
