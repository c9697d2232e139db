"""Notebooks on Braindrill kernels, executed by nbclient and papermill as a script would: the
outputs match the ones saved in ``tests/notebooks/*.ipynb`` (Python, JavaScript, Java, and a cell
that times out)."""

from __future__ import annotations

import copy
import pathlib

import nbformat
import papermill
import pytest
from nbclient import NotebookClient

from .conftest import containers_left

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("embedded_engine")]
NOTEBOOKS = pathlib.Path(__file__).parent / "notebooks"


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
