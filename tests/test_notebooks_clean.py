"""Notebooks are committed thin and clean: no outputs, no execution counts, no function or class definitions
(logic belongs in alad_kit, tested), a parameters cell calling notebook_setup (which reads ALAD_SCALE),
numbered names, ruff-clean."""

import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
DEFINITION = re.compile(r"^\s*(async\s+def|def|class)\s")
NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")


def _code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_notebooks_exist_and_are_numbered():
    assert PATHS, f"no notebooks in {NOTEBOOKS}"
    numbers = []
    for path in PATHS:
        match = NAME.match(path.name)
        assert match, f"{path.name}: name must look like NN_lower_case.ipynb"
        numbers.append(int(match.group(1)))
    assert numbers == list(range(len(numbers))), f"notebook numbers must run 00, 01, ... without gaps: {numbers}"


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_is_valid_and_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
        assert "attachments" not in cell or not cell.attachments, f"{path.name} cell {i} has attachments"
    assert "widgets" not in nb.metadata, f"{path.name} stores widget state in its metadata"


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_is_thin(path):
    for i, cell in enumerate(_code_cells(path)):
        for line in cell.source.splitlines():
            assert not DEFINITION.match(line), f"{path.name} code cell {i} defines {line.strip()!r}: move it to alad_kit"
        assert "lambda" not in cell.source, f"{path.name} code cell {i} uses lambda: move the logic to alad_kit"
        for place in ("/work/", "/tmp/", "/root/", "/home/"):
            assert place not in cell.source, f"{path.name} code cell {i} hard-codes the path {place}"


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_has_a_parameters_cell_reading_the_scale(path):
    cells = _code_cells(path)
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one code cell tagged 'parameters', found {len(tagged)}"
    assert "ALAD_SCALE" in tagged[0].source, f"{path.name}: the parameters cell must name ALAD_SCALE"
    # notebook_setup reads ALAD_SCALE through scale_config (tests/ui/test_notebook.py), so no notebook
    # derives the scale, models or runs folder on its own.
    assert "notebook_setup(" in tagged[0].source, f"{path.name}: the parameters cell must use notebook_setup()"
    assert cells.index(tagged[0]) == 0, f"{path.name}: the parameters cell must be the first code cell"


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_notebooks_pass_ruff():
    result = subprocess.run(["ruff", "check", "--no-cache", str(NOTEBOOKS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
