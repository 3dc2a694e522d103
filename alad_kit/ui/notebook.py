"""The notebooks' parameters in one call: ``setup = notebook_setup()`` (task: ALAD_TASK).

Every notebook used to repeat the same fifteen lines (scale, task, data, models, seed, runs folder and the
RunConfig keyword arguments they share). They live here once, so the notebooks agree on them: all of them
read and write the same runs folder ``<ALAD_RUNS_DIR or ../runs/nb>/<scale>-<task>`` and therefore reuse each
other's runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from alad_kit.core.config import TASKS, RunConfig, scale_config
from alad_kit.pipeline.experiments import env_path
from alad_kit.tasks import DEFAULT_TASK, get_task

# Teacher M_L, student M_C and the student layers kept, by scale: smoke cuts one MiniLM down to one layer
# and uses it as both (seconds on a CPU); every other scale distils MPNet-base into the full MiniLM-L6.
SMOKE_MODELS = ("minilm-l6", "minilm-l6", (0,))
MODELS = ("mpnet-base", "minilm-l6", None)
# Where the notebooks keep their runs when ALAD_RUNS_DIR is unset (relative to notebooks/, their cwd).
DEFAULT_RUNS_DIR = "../runs/nb"


@dataclass(frozen=True)
class NotebookSetup:
    scale: str  # smoke | cpu | full: the budget preset (ALAD_SCALE)
    task: str  # a registered task (alad_kit.tasks): pos | ner | qa built in
    data_dir: str | None  # the task data (ALAD_DATA_DIR), else "wnut16": WNUT-16 tweets shipped on PyPI
    teacher: str  # M_L: offline alias, hub id or local dir
    student: str  # M_C: offline alias, hub id or local dir
    student_layers: tuple[int, ...] | None  # keep only these student layers (None: all)
    seed: int  # seeds data order, init and dropout of every run
    runs: Path  # the runs folder shared by all notebooks of this scale and task

    def __post_init__(self):
        scale_config(self.scale)  # raises on an unknown scale
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if not self.teacher or not self.student:
            raise ValueError("teacher and student must be given")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    @property
    def smoke(self) -> bool:
        """True at smoke scale, where notebooks pick their smallest budgets."""
        return self.scale == "smoke"

    @property
    def scores(self) -> list[str]:
        """The task's score keys in table order (Task.score_columns): the columns a notebook shows."""
        return [key for key, _, _ in get_task(self.task).score_columns]

    @property
    def metric(self) -> str:
        """The task's selection metric (Task.selection_metric): the one score a figure plots."""
        return get_task(self.task).selection_metric

    @property
    def sample_input(self):
        """One real input of the task (Task.sample_inputs): a text, or a (question, context) pair."""
        return get_task(self.task).sample_inputs[0]

    @property
    def cache_dir(self) -> str:
        """The embedding / adapter cache every run of these notebooks shares."""
        return str(self.runs / ".alad_cache")

    def common(self, **overrides) -> dict:
        """The RunConfig keyword arguments the notebooks' runs share, updated with ``overrides``."""
        kwargs = dict(task=self.task, teacher=self.teacher, student=self.student,
                      student_layers=self.student_layers, scale=self.scale, data_dir=self.data_dir,
                      seed=self.seed, cache_dir=self.cache_dir)
        return {**kwargs, **overrides}

    def run_config(self, name: str, **overrides) -> RunConfig:
        """The RunConfig of run ``name`` (a folder below ``runs``, e.g. ``"frozen_w3"``)."""
        return RunConfig(**self.common(out=str(self.runs / name), **overrides))


def notebook_setup(task: str | None = None, seed: int = 0) -> NotebookSetup:
    """The parameters of a notebook for ``task`` (None: ALAD_TASK, else the default task), read from the
    environment.

    ALAD_SCALE (smoke when unset) picks the budgets and the models, ALAD_DATA_DIR the data (relative paths
    are found from notebooks/ as well as from the repository root; default: WNUT-16), ALAD_RUNS_DIR the
    parent of the runs folder (default ``../runs/nb``).
    """
    scale = scale_config(os.environ.get("ALAD_SCALE")).name
    task = task or os.environ.get("ALAD_TASK") or DEFAULT_TASK
    teacher, student, layers = SMOKE_MODELS if scale == "smoke" else MODELS
    runs = Path(os.environ.get("ALAD_RUNS_DIR", DEFAULT_RUNS_DIR)) / f"{scale}-{task}"
    return NotebookSetup(scale=scale, task=task, data_dir=env_path("ALAD_DATA_DIR", default="wnut16"),
                         teacher=teacher, student=student, student_layers=layers, seed=seed, runs=runs)
