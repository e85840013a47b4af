"""The notebooks in ``notebooks/`` run top to bottom in a fresh kernel, offline, and are
committed with the outputs of one such run (the documentation site shows them as they are).

Each one executes with nbclient in its own ``python3`` kernel (ipykernel), from
``notebooks/`` as the working directory, inheriting this process's environment: the
on-disk embedding cache and the offline flags set in ``conftest.py``. Figures render with
the inline backend rather than ``Agg`` so that a plot that fails to draw (a bad label, an
empty axis) fails the test instead of being skipped by a no-op ``plt.show()``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 300
# outputs are kept small: PNG plots and short text, no data dumps
MAX_COMMITTED_BYTES = 600_000


def test_the_series_is_complete():
    # A glob that finds nothing would parametrize the tests below into silence.
    assert [path.name[:3] for path in NOTEBOOKS] == ["01_", "02_", "03_", "04_", "05_", "06_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_committed_with_the_outputs_of_one_run(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert path.stat().st_size < MAX_COMMITTED_BYTES
    assert notebook.cells[0].cell_type == "markdown", "a notebook opens by saying what it shows"
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    # one top-to-bottom run in a fresh kernel: every cell ran, in order, none failed
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert not [out for cell in code for out in cell.outputs if out.get("output_type") == "error"]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            # the public API only: no private modules
            assert "ctxengine._" not in cell.source and "ctxengine import _" not in cell.source


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_runs_top_to_bottom(path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # let ipykernel choose the inline backend
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell and its traceback
    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    figures = sum("image/png" in out.get("data", {}) for out in outputs)
    # a top-level plt.show() always draws; one inside a loop may legitimately draw nothing
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    expected = sum("\nplt.show()" in "\n" + source for source in code)
    assert figures >= expected, "every plotting cell draws its figure"
