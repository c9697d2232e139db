"""Notebooks on Braindrill kernels, executed by nbclient and papermill as a script would: the
outputs match the ones saved in ``tests/notebooks/*.ipynb`` (Python, JavaScript, Java, and a cell
that times out)."""

from __future__ import annotations

import copy
import re

import nbformat
import papermill
import pytest
from nbclient import NotebookClient

from tests.helpers import TESTS, containers_left

pytestmark = pytest.mark.usefixtures("embedded_engine")
NOTEBOOKS = TESTS / "notebooks"


def outputs(nb) -> list[dict]:
    """Each cell's outputs: the text of each stream (stdout and stderr are separate pipes, so
    their relative order is not kept), and errors with their Braindrill status and message."""
    cells = []
    for cell in nb.cells:
        seen: dict = {"stdout": "", "stderr": "", "errors": [], "other": []}
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                seen[out.name] += out.text
            elif out.output_type == "error":
                seen["errors"].append((out.ename, out.evalue))
            else:
                seen["other"].append(out.output_type)
        cells.append(seen)
    return cells


def cleared(nb):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.outputs, cell.execution_count = [], None
    return nb


@pytest.mark.parametrize(
    "name, allow_errors",
    [("python", False), ("javascript", False), ("java", False), ("timeout", True)],
)
def test_nbclient_outputs_match(name, allow_errors):
    expected = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nb = cleared(expected)
    NotebookClient(nb, timeout=120, allow_errors=allow_errors).execute()
    assert outputs(nb) == outputs(expected)
    assert [c.execution_count for c in nb.cells] == list(range(1, len(nb.cells) + 1))
    assert nb.metadata.language_info.name == expected.metadata.kernelspec.language
    assert containers_left() == []


def test_papermill(tmp_path):
    source = NOTEBOOKS / "python.ipynb"
    result = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(source), str(result), progress_bar=False)
    assert outputs(nbformat.read(result, as_version=4)) == outputs(nbformat.read(source, 4))


def test_a_data_notebook_saves_table_plot_and_traceback(tmp_path):
    """nbclient runs a notebook on braindrill-python-data; the saved .ipynb holds the DataFrame's
    HTML table, the plot's PNG and the failing cell's real traceback."""
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {
        "name": "braindrill-python-data",
        "display_name": "Python + SciPy (Braindrill)",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import pandas as pd\npd.DataFrame({'city': ['Oslo'], 'n': [7]})"
        ),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])"),
        nbformat.v4.new_code_cell("1 / 0"),
    ]
    NotebookClient(nb, timeout=120, allow_errors=True).execute()
    saved = tmp_path / "data.ipynb"
    nbformat.write(nb, saved)
    table, plot, failing = nbformat.read(saved, as_version=4).cells
    (result,) = [o for o in table.outputs if o.output_type == "execute_result"]
    assert "<table" in result.data["text/html"] and "Oslo" in result.data["text/html"]
    pngs = [o for o in plot.outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(pngs) == 1 and pngs[0].data["image/png"].startswith("iVBORw0KGgo")
    (error,) = failing.outputs
    assert error.output_type == "error" and error.ename == "ZeroDivisionError"
    assert any("1 / 0" in re.sub(r"\x1b\[[0-9;]*m", "", line) for line in error.traceback)
    assert containers_left() == []
