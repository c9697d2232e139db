"""Cells that behave like Jupyter's, on real kernels and real containers: expression results,
rich display, plots, real tracebacks, is_complete, a scientific Python runtime, and display files
from any language. (REST's ``outputs``: ``tests/docker/api/test_rest_outputs.py``.)"""

from __future__ import annotations

import base64
import re

import pytest
from jupyter_client import KernelManager

from tests.helpers import TIMEOUT, containers_left
from tests.helpers import embedded_sandboxes as embedded_sandbox  # noqa: F401 (both kinds)
from tests.helpers import execute_cell as run

pytestmark = pytest.mark.usefixtures("embedded_engine")
PNG = b"\x89PNG\r\n\x1a\n"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def kernel(embedded_engine):
    """One kernel per language for the module (each cell is a fresh container anyway)."""
    started = {}

    def kernel(language="python"):
        if language not in started:
            km = KernelManager(kernel_name=f"braindrill-{language}")
            km.start_kernel()
            kc = km.client()
            kc.start_channels()
            kc.wait_for_ready(timeout=TIMEOUT)
            started[language] = (km, kc)
        return started[language][1]

    yield kernel
    for km, kc in started.values():
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert containers_left() == []


def of_type(messages, msg_type: str) -> list[dict]:
    return [m["content"] for m in messages if m["msg_type"] == msg_type]


def stdout(messages) -> str:
    return "".join(c["text"] for c in of_type(messages, "stream") if c["name"] == "stdout")


# -- results ---------------------------------------------------------------------------------------
def test_the_last_expression_is_the_cells_result(kernel):
    reply, messages = run(kernel(), "x = 6\nx * 7")
    results = of_type(messages, "execute_result")
    assert len(results) == 1 and results[0]["data"]["text/plain"] == "42"
    assert results[0]["execution_count"] == reply["execution_count"]
    assert reply["status"] == "ok"


def test_a_trailing_semicolon_hides_it(kernel):
    reply, messages = run(kernel(), "6 * 7;")
    assert reply["status"] == "ok" and of_type(messages, "execute_result") == []


def test_rich_reprs_of_the_result(kernel):
    code = (
        "class Card:\n"
        "    def _repr_html_(self): return '<b>ace</b>'\n"
        "    def _repr_markdown_(self): return '**ace**'\n"
        "    def __repr__(self): return 'Card()'\n"
        "Card()"
    )
    _, messages = run(kernel(), code)
    (result,) = of_type(messages, "execute_result")
    assert result["data"] == {
        "text/plain": "Card()",
        "text/html": "<b>ace</b>",
        "text/markdown": "**ace**",
    }


# -- display -------------------------------------------------------------------------------------
def test_display_of_every_kind(kernel):
    code = (
        "from IPython.display import display, HTML, Markdown, SVG, JSON, Image\n"
        "display(HTML('<i>h</i>'), Markdown('# m'))\n"
        'display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\'))\n'
        "display(JSON({'a': [1, 2]}))\n"
        "import base64\n"
        "display(Image(data=base64.b64decode("
        "'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
        "RU5ErkJggg==')))\n"
        "print('after')"
    )
    reply, messages = run(kernel(), code)
    shown = of_type(messages, "display_data")
    mimes = [sorted(set(d["data"]) - {"text/plain"}) for d in shown]
    assert mimes == [
        ["text/html"],
        ["text/markdown"],
        ["image/svg+xml"],
        ["application/json"],
        ["image/png"],
    ]
    assert shown[3]["data"]["application/json"] == {"a": [1, 2]}
    assert base64.b64decode(shown[4]["data"]["image/png"]).startswith(PNG)
    assert reply["status"] == "ok" and stdout(messages) == "after\n"
    # In order: the displays came before what was printed after them.
    kinds = [m["msg_type"] for m in messages]
    assert kinds.index("stream") > max(i for i, k in enumerate(kinds) if k == "display_data")


def test_update_display_and_clear_output(kernel):
    code = (
        "from IPython.display import display, update_display, clear_output\n"
        "handle = display('first', display_id=True)\n"
        "handle.update('second')\n"
        "update_display('third', display_id=handle.display_id)\n"
        "print('x')\n"
        "clear_output(wait=True)\n"
        "print('y')"
    )
    _, messages = run(kernel(), code)
    (shown,) = of_type(messages, "display_data")
    updates = of_type(messages, "update_display_data")
    display_id = shown["transient"]["display_id"]
    assert [u["data"]["text/plain"] for u in updates] == ["'second'", "'third'"]
    assert all(u["transient"]["display_id"] == display_id for u in updates)
    assert of_type(messages, "clear_output") == [{"wait": True}]


# -- errors --------------------------------------------------------------------------------------
def test_a_raised_exception_is_one_real_error(kernel):
    code = "def f():\n    raise ValueError('x')\n\nprint('before')\nf()"
    reply, messages = run(kernel(), code)
    (error,) = of_type(messages, "error")
    assert error["ename"] == "ValueError" and error["evalue"] == "x"
    assert any("ValueError" in line for line in error["traceback"])
    plain = [ANSI.sub("", line) for line in error["traceback"]]
    assert any("f()" in line for line in plain)  # IPython's: the cell's own lines
    assert reply["status"] == "error"
    assert (reply["ename"], reply["evalue"], reply["traceback"]) == (
        error["ename"],
        error["evalue"],
        error["traceback"],
    )
    assert stdout(messages) == "before\n"
    stderr = [c["text"] for c in of_type(messages, "stream") if c["name"] == "stderr"]
    assert stderr == []  # no second copy on stderr


def test_a_syntax_error_is_an_error_too(kernel):
    reply, messages = run(kernel(), "print('never'")
    (error,) = of_type(messages, "error")
    assert error["ename"] == "SyntaxError" and reply["status"] == "error"


def test_braindrill_outcomes_keep_their_names(kernel):
    reply, _ = run(kernel(), "%%limits timeout_s=1\nimport time\ntime.sleep(30)")
    assert reply["status"] == "error" and reply["ename"] == "timeout"
    reply, _ = run(kernel(), "import sys\nsys.exit(3)")
    assert reply["status"] == "error" and reply["ename"] == "error" and "3" in reply["evalue"]


# -- is_complete ---------------------------------------------------------------------------------
def is_complete(kc, code: str) -> dict:
    msg_id = kc.is_complete(code)
    while True:
        reply = kc.get_shell_msg(timeout=TIMEOUT)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]


@pytest.mark.parametrize(
    "code, status, indent",
    [
        ("print('hi')", "complete", None),
        ("print('''hello", "incomplete", ""),
        ("def f():", "incomplete", "    "),
        ("for i in range(3):\n    if i:", "incomplete", "        "),
        ("x = ]", "invalid", None),
    ],
)
def test_is_complete_parses_python_like_ipykernel(kernel, code, status, indent):
    reply = is_complete(kernel(), code)
    assert reply["status"] == status
    assert reply.get("indent") == indent


def test_is_complete_is_unknown_for_other_languages(kernel):
    assert is_complete(kernel("javascript"), "function f() {") == {"status": "unknown"}


# -- python-data ---------------------------------------------------------------------------------
def test_a_dataframe_shows_as_an_html_table(kernel):
    code = "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})"
    reply, messages = run(kernel("python-data"), code)
    (result,) = of_type(messages, "execute_result")
    assert "<table" in result["data"]["text/html"] and "<td>x</td>" in result["data"]["text/html"]
    assert "a  b" in result["data"]["text/plain"].replace("   ", "  ")
    assert reply["status"] == "ok"


def test_a_plot_appears_inline(kernel):
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 3, 2])\nplt.title('shown at plt.show()')\nplt.show()\n"
        "plt.figure()\nplt.bar(['a', 'b'], [2, 1])\nprint('end of cell')"
    )
    reply, messages = run(kernel("python-data"), code)
    pngs = [d["data"]["image/png"] for d in of_type(messages, "display_data")]
    assert len(pngs) == 2  # one at plt.show(), one at the end of the cell
    assert all(base64.b64decode(p).startswith(PNG) for p in pngs)
    assert reply["status"] == "ok" and stdout(messages) == "end of cell\n"


def test_numpy_and_scipy_run(kernel):
    code = "import numpy as np, scipy.linalg\nfloat(scipy.linalg.det(np.array([[2.0, 1], [1, 3]])))"
    _, messages = run(kernel("python-data"), code)
    (result,) = of_type(messages, "execute_result")
    assert float(result["data"]["text/plain"]) == pytest.approx(5.0)


# -- display files, any language -----------------------------------------------------------------
C_DISPLAY = r"""
#include <stdio.h>
#include <stdlib.h>
int main(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/1-table.html", getenv("BRAINDRILL_DISPLAY"));
    FILE *f = fopen(path, "w"); fputs("<table><tr><td>c</td></tr></table>", f); fclose(f);
    snprintf(path, sizeof path, "%s/2-data.json", getenv("BRAINDRILL_DISPLAY"));
    f = fopen(path, "w"); fputs("{\"n\": 3}", f); fclose(f);
    puts("written");
    return 0;
}
"""
GO_DISPLAY = """package main

import (
\t"fmt"
\t"os"
)

func main() {
\tdir := os.Getenv("BRAINDRILL_DISPLAY")
\tos.WriteFile(dir+"/a.md", []byte("# from *Go*"), 0o644)
\tos.WriteFile(dir+"/b.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), 0o644)
\tfmt.Println("written")
}
"""
JS_DISPLAY = """
const fs = require('fs');
const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
fs.writeFileSync(process.env.BRAINDRILL_DISPLAY + '/plot.png', png);
fs.writeFileSync(process.env.BRAINDRILL_DISPLAY + '/notes.txt', 'été\\n');
console.log('written');
"""  # noqa: E501


@pytest.mark.parametrize(
    "language, code, expected",
    [
        ("c", C_DISPLAY, [{"text/html": "<table><tr><td>c</td></tr></table>"},
                          {"application/json": {"n": 3}}]),
        ("go", GO_DISPLAY, [{"text/markdown": "# from *Go*"},
                            {"image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg"/>'}]),
        ("javascript", JS_DISPLAY, [{"text/plain": "été\n"}, {"image/png": None}]),  # by name
    ],
)  # fmt: skip
def test_display_files_of_any_language(kernel, language, code, expected):
    reply, messages = run(kernel(language), code, timeout=120)
    assert reply["status"] == "ok", reply
    assert stdout(messages) == "written\n"
    shown = [d["data"] for d in of_type(messages, "display_data")]
    assert [list(d) for d in shown] == [list(e) for e in expected]
    for data, want in zip(shown, expected, strict=True):
        for mime, value in want.items():
            if value is None:
                assert base64.b64decode(data[mime]).startswith(PNG)
            else:
                assert data[mime] == value
