"""nbclient's own test notebooks (``nbclient_notebooks/``, the list of its
``test_run_all_notebooks``) run on ``braindrill-python`` with the options nbclient gives them,
their outputs compared as nbclient compares them (``normalize_output`` and
``assert_notebooks_equal`` of nbclient's ``tests/test_client.py``, BSD-3, adapted: SVG compared
in XML's canonical form instead of through xmltodict).

Left out, and why: ``JupyterWidgets.ipynb`` (ipywidgets is not in the images, and its models need
a live kernel process: a cell's sandbox ends with the cell).
"""

from __future__ import annotations

import copy
import re
from base64 import b64decode, b64encode
from pathlib import Path
from xml.etree.ElementTree import canonicalize

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.usefixtures("embedded_engine")
FILES = Path(__file__).parent / "nbclient_notebooks"
NOTEBOOKS = {
    "Other Comms.ipynb": {},  # comm_open and comm_msg go out on IOPub
    "Clear Output.ipynb": {},
    "Empty Cell.ipynb": {},
    "Factorials.ipynb": {},
    "HelloWorld.ipynb": {},
    "Inline Image.ipynb": {},  # python.png, next to the notebook
    "Interrupt.ipynb": {"timeout": 3, "interrupt_on_timeout": True, "allow_errors": True},
    "Skip Exceptions with Cell Tags.ipynb": {},
    "Skip Exceptions.ipynb": {"allow_errors": True},
    "Skip Execution with Cell Tag.ipynb": {},
    "SVG.ipynb": {},
    "Unicode.ipynb": {},
    "UnicodePy3.ipynb": {},
    "update-display-id.ipynb": {},
    "Check History in Memory.ipynb": {},
}
ADDRESS = re.compile(r"0x[0-9a-f]{7,9}")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
IPYTHON_INPUT = re.compile(
    r"(<ipython-input-\d+-[0-9a-f]+>|<IPY-INPUT>) in (<module>|<cell line: \d>\(\))"
)
IPYTHON8_INPUT = re.compile(
    r"((Cell|Input) In\s?\[\d+\]|<IPY-INPUT>), (in )?(line \d|<module>|<cell line: \d>\(\))"
)


@pytest.fixture(autouse=True)
def at_home(monkeypatch):
    monkeypatch.chdir(FILES.parent)  # the notebooks' folder is inside the script's root
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_nbclients_own_notebooks(name):
    expected = nbformat.read(FILES / name, 4)
    cleaned = copy.deepcopy(expected)
    for cell in cleaned.cells:
        cell.pop("execution_count", None)
        cell["outputs"] = []
    options = {"kernel_name": "braindrill-python", **NOTEBOOKS[name]}
    resources = {"metadata": {"path": str(FILES)}}
    actual = NotebookClient(cleaned, resources=resources, **options).execute()
    assert len(expected.cells) == len(actual.cells)
    for want, got in zip(expected.cells, actual.cells, strict=True):
        assert list(map(normalize, want.get("outputs", []))) == list(
            map(normalize, got.get("outputs", []))
        )
        assert want.get("execution_count") == got.get("execution_count")


def normalize(output) -> dict:
    output = copy.deepcopy(dict(output))
    output.pop("metadata", None)
    if "text" in output:
        output["text"] = ADDRESS.sub("<HEXADDR>", output["text"])
    data = output.get("data", {})
    if "text/plain" in data:
        data["text/plain"] = ADDRESS.sub("<HEXADDR>", data["text/plain"])
    if "image/svg+xml" in data:
        data["image/svg+xml"] = canonicalize(data["image/svg+xml"], strip_text=True)
    for key, value in data.items():
        if isinstance(value, str):
            try:
                data[key] = b64encode(b64decode(value.encode("ascii"))).decode("ascii")
            except (ValueError, TypeError):
                pass
    if "traceback" in output:
        lines = [ANSI.sub("", line) for line in output["traceback"]]
        lines = [IPYTHON_INPUT.sub("<IPY-INPUT>", line) for line in lines]
        output["traceback"] = [IPYTHON8_INPUT.sub("<IPY-INPUT>", line) for line in lines]
    return output
