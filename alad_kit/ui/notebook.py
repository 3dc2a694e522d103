"""The notebooks' parameters in one call: ``setup = notebook_setup()`` (task: ALAD_TASK).

Every notebook used to repeat the same fifteen lines (scale, task, data, models, seed, runs folder and the
RunConfig keyword arguments they share). They live here once, so the notebooks agree on them: all of them
read and write the same runs folder ``<ALAD_RUNS_DIR or ../runs/nb>/<scale>-<task>`` and therefore reuse each
other's runs.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alad_kit.core.config import TASKS, RunConfig, scale_config
from alad_kit.core.logs import configure_notebook_logging
from alad_kit.data.task_data import missing_corpus
from alad_kit.pipeline.committed import load_committed
from alad_kit.pipeline.experiments import env_path, sweep
from alad_kit.tasks import DEFAULT_TASK, get_task

# Teacher M_L, student M_C and the student layers kept, by scale: smoke cuts one MiniLM down to one layer
# and uses it as both (seconds on a CPU); tiny distils MPNet-base into MiniLM-L6 cut to two layers (as
# `alad demo`: a small student leaves ALAd something to recover, and is cheap to fine-tune); cpu and full
# distil MPNet-base into the full MiniLM-L6.
SMOKE_MODELS = ("minilm-l6", "minilm-l6", (0,))
TINY_MODELS = ("mpnet-base", "minilm-l6", (0, 1))
MODELS = ("mpnet-base", "minilm-l6", None)
# The scale of a notebook run by a person when ALAD_SCALE is unset (CI and the tests set ALAD_SCALE=smoke).
NOTEBOOK_SCALE = "tiny"
# Where the notebooks keep their runs when ALAD_RUNS_DIR is unset (relative to notebooks/, their cwd).
DEFAULT_RUNS_DIR = "../runs/nb"
# The committed `alad bench` of the cpu study (relative to notebooks/): mpnet-base, minilm-l6 whole and 0-1.
COMMITTED_BENCH = "../results/cpu-study/bench_students.json"
# The committed claims study (relative to notebooks/) that ALAD_RESULTS=committed reads instead of training.
COMMITTED_STUDY = "../results/cpu-study"
# Where a notebook's runs come from (ALAD_RESULTS): trained here, or the committed cpu-scale study's.
RESULTS = ("train", "committed")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NotebookSetup:
    scale: str  # smoke | tiny | cpu | full: the budget preset (ALAD_SCALE, default tiny)
    task: str  # a registered task (alad_kit.tasks): pos | ner | qa built in
    data_dir: str | None  # the task data (ALAD_DATA_DIR), else "wnut16": WNUT-16 tweets shipped on PyPI
    teacher: str  # M_L: offline alias, hub id or local dir
    student: str  # M_C: offline alias, hub id or local dir
    student_layers: tuple[int, ...] | None  # keep only these student layers (None: all)
    seed: int  # seeds data order, init and dropout of every run
    runs: Path  # the runs folder shared by all notebooks of this scale and task
    results: str = "train"  # train: run (or reuse) the runs; committed: copy them from the committed study (ALAD_RESULTS)

    def __post_init__(self):
        scale_config(self.scale)  # raises on an unknown scale
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if not self.teacher or not self.student:
            raise ValueError("teacher and student must be given")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.results not in RESULTS:
            raise ValueError(f"ALAD_RESULTS must be one of {', '.join(RESULTS)}, got {self.results!r}")

    @property
    def committed(self) -> bool:
        """True when the runs come from the committed cpu-scale study instead of being trained here."""
        return self.results == "committed"

    @property
    def study(self) -> Path:
        """The committed study of this task with the tiny scale's models (MiniLM-L6 cut to layers 0-1)."""
        return Path(COMMITTED_STUDY) / f"{self.task}-minilm-2l"

    def sweep(self, configs: Sequence[RunConfig]) -> pd.DataFrame:
        """``sweep(configs)``: train (or reuse) them, or, with ALAD_RESULTS=committed, copy the committed runs of
        the same kind into their folders and train nothing (:mod:`alad_kit.pipeline.committed`)."""
        return load_committed(configs, self.study) if self.committed else sweep(configs)

    @property
    def smoke(self) -> bool:
        """True at smoke scale, where notebooks pick their smallest budgets."""
        return self.scale == "smoke"

    @property
    def quick(self) -> bool:
        """True at smoke and tiny scale: extras outside the runs (compression, benchmarks) take their
        smallest budgets, so a notebook stays within minutes."""
        return self.scale in ("smoke", "tiny")

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

    @property
    def student_key(self) -> str:
        """The student as ``collect_runs`` and ``alad bench`` name it: ``minilm-l6`` or ``minilm-l6:0,1``."""
        layers = ",".join(map(str, self.student_layers or ()))
        return f"{self.student}:{layers}" if layers else self.student

    def speed_bench(self, committed: str | os.PathLike | None = COMMITTED_BENCH,
                    windows: Sequence[int] = (1, 3, 5)) -> Path:
        """An ``alad bench`` JSON (the Spd column's source) that times this teacher and student on the CPU:
        ``committed`` when it covers them, else ``runs/bench.json``, measured once (small: 4 x 64 tokens,
        3 repeats; seconds at smoke scale) and reused."""
        for path in (committed, self.runs / "bench.json"):
            if path is not None and _bench_covers(Path(path), self.teacher, self.student_key, windows):
                return Path(path)
        from alad_kit.analysis.bench import run_bench

        out = self.runs / "bench.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        run_bench(self.teacher, [self.student_key], windows=windows, batch_size=4, seq_len=64, repeats=3, warmup=1,
                  out=out, device="cpu", cache_dir=self.cache_dir)
        return out

    def run_config(self, name: str, **overrides) -> RunConfig:
        """The RunConfig of run ``name`` (a folder below ``runs``, e.g. ``"frozen_w3"``)."""
        return RunConfig(**self.common(out=str(self.runs / name), **overrides))


def _bench_covers(path: Path, teacher: str, student: str, windows: Sequence[int]) -> bool:
    """True when the bench JSON at ``path`` timed ``teacher`` and ``student`` alone and with each window on CPU."""
    if not path.is_file():
        return False
    try:
        bench = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path}: not a bench JSON ({err})") from None
    timed = {(r.get("model"), r.get("window")) for r in bench.get("rows", []) if r.get("device") == "cpu"}
    wanted = {(student, None), *((student, int(w)) for w in windows)}
    return (bench.get("teacher") or {}).get("name") == teacher and wanted <= timed


def notebook_setup(task: str | None = None, seed: int = 0, can_show_committed: bool = False) -> NotebookSetup:
    """The parameters of a notebook for ``task`` (None: ALAD_TASK, else the default task), read from the
    environment.

    ALAD_SCALE (``tiny`` when unset: a person at a notebook; CI sets smoke) picks the budgets and the models,
    ALAD_DATA_DIR the data (relative paths are found from notebooks/ as well as from the repository root;
    default: WNUT-16), ALAD_RUNS_DIR the parent of the runs folder (default ``../runs/nb``). ALAD_RESULTS=committed
    makes ``setup.sweep`` copy the committed cpu-scale study's runs instead of training (``RESULTS``), in a
    notebook that says ``can_show_committed`` (it needs scores and curves only); elsewhere it is reported and
    the notebook trains as usual, since the committed runs hold no model weights.
    """
    results = os.environ.get("ALAD_RESULTS") or "train"
    if results == "committed" and not can_show_committed:
        log.warning("ALAD_RESULTS=committed: this notebook needs trained models, which the committed study does not "
                    "hold, so it trains as usual (notebook 05 shows the committed results)")
        results = "train"
    scale = scale_config(os.environ.get("ALAD_SCALE") or NOTEBOOK_SCALE).name
    task = task or os.environ.get("ALAD_TASK") or DEFAULT_TASK
    teacher, student, layers = {"smoke": SMOKE_MODELS, "tiny": TINY_MODELS}.get(scale, MODELS)
    folder = f"{scale}-{task}"
    if results == "committed":  # the committed study's scale and models, in a runs folder of its own
        if os.environ.get("ALAD_SCALE") not in (None, "", "cpu"):
            raise ValueError("ALAD_RESULTS=committed shows the committed cpu-scale study: unset ALAD_SCALE "
                             f"(it is {os.environ['ALAD_SCALE']!r}) or set it to cpu")
        scale, (teacher, student, layers), folder = "cpu", TINY_MODELS, f"committed-{task}"
    runs = Path(os.environ.get("ALAD_RUNS_DIR", DEFAULT_RUNS_DIR)) / folder
    setup = NotebookSetup(scale=scale, task=task, data_dir=env_path("ALAD_DATA_DIR", default="wnut16"),
                          teacher=teacher, student=student, student_layers=layers, seed=seed, runs=runs,
                          results=results)
    configure_notebook_logging()
    if not setup.committed:
        _say_corpus_once(setup.data_dir)
    return setup


def _say_corpus_once(data_dir: str | None) -> None:
    """Without a phase-1 corpus every run would warn that it uses the fallback text: say it here, once."""
    missing = missing_corpus(data_dir)
    if missing is not None:
        why = "ALAD_DATA_DIR is not set" if not os.environ.get("ALAD_DATA_DIR") else missing
        log.warning("no phase-1 corpus (%s): phase 1 of every run in this notebook reads a fallback English text "
                    "(Python's documentation), which is expected without the data folder", why)
        warnings.filterwarnings("ignore", message="no phase-1 corpus")


# Where `alad notebooks` puts a person's working copies (next to notebooks/, so their ../runs and ../results
# paths still point into the repository; .gitignore lists it).
WORK_COPY_DIR = "my-notebooks"


def copy_notebooks(source: str | os.PathLike, dest: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """Copy every ``*.ipynb`` of ``source`` into ``dest`` (made if missing), never over a copy already there:
    JupyterLab's autosave then changes the copies, not the tracked notebooks. Returns (copied, kept)."""
    import shutil

    from alad_kit.core.io import atomic_path

    source, dest = Path(source), Path(dest)
    notebooks = sorted(source.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks (*.ipynb) in {source}")
    if dest.resolve() == source.resolve():
        raise ValueError(f"{dest} is the folder of the tracked notebooks; choose another")
    dest.mkdir(parents=True, exist_ok=True)
    copied, kept = [], []
    for notebook in notebooks:
        target = dest / notebook.name
        if target.exists():
            kept.append(target)
        else:
            with atomic_path(target) as tmp:  # a copy is whole or absent
                shutil.copyfile(notebook, tmp)
            copied.append(target)
    return copied, kept
