"""Every notebook runs for every task its parameter cell offers (issue 21). nbmake runs the notebooks as
committed (NER, the default); this runs each one again for POS and QA at smoke scale, the task given through
ALAD_TASK, which the parameter cell's ``notebook_setup(task=None)`` reads. The notebooks of one task share a
runs folder, in order, as they do for a reader: 05 reuses the runs of 01-04."""

import os
import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
OTHER_TASKS = {"pos": "pos_ud_de_gsd", "qa": "qa_squad2"}  # task -> its folder under ALAD_DATA_DIR


def _offers_a_task(path: Path) -> bool:
    return any("notebook_setup(task=None" in c.source for c in nbformat.read(path, as_version=4).cells)


@pytest.fixture(scope="session")
def runs_by_task(tmp_path_factory):
    return {task: tmp_path_factory.mktemp(f"nb-{task}") for task in OTHER_TASKS}


def test_every_notebook_takes_its_task_from_the_environment():
    assert PATHS and all(_offers_a_task(p) for p in PATHS), "a parameter cell must call notebook_setup(task=None)"


@pytest.mark.parametrize("task, path", [(t, p) for t in OTHER_TASKS for p in PATHS],
                         ids=[f"{t}-{p.stem[:2]}" for t in OTHER_TASKS for p in PATHS])
def test_notebook_runs_for_the_task(task, path, runs_by_task, monkeypatch):
    from nbclient import NotebookClient

    data = os.environ.get("ALAD_DATA_DIR")
    if os.environ.get("ALAD_SCALE", "smoke") != "smoke":
        pytest.skip("the notebooks run for every task at smoke scale only")
    if not data or not (Path(data) / OTHER_TASKS[task]).is_dir():
        pytest.skip(f"{task} needs ALAD_DATA_DIR with {OTHER_TASKS[task]}/ (CI: ../shared/data)")
    monkeypatch.setenv("ALAD_TASK", task)
    monkeypatch.setenv("ALAD_DATA_DIR", str(Path(data).resolve()))
    monkeypatch.setenv("ALAD_RUNS_DIR", str(runs_by_task[task]))
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=3600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    print(f"{path.name} for {task}: {time.perf_counter() - start:.0f} s")
    setup_output = "".join(o.get("data", {}).get("text/plain", "") for o in notebook.cells[1].get("outputs", []))
    assert f"task='{task}'" in setup_output  # the notebook ran for the task, not the default
