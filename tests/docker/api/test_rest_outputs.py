"""Rich outputs over REST, on a real server and real containers: a JSON result's ``outputs``
(display(), plots, display files), cell semantics on request, ``display`` events in the SSE stream,
and the bounds (a display flood is ``output_limit`` with what came before kept)."""

from __future__ import annotations

import base64
import json

import pytest

from tests.docker.kernel.test_cells import C_DISPLAY, PNG
from tests.helpers import sandbox_kinds as sandbox_kind  # noqa: F401 (a fixture: both kinds)

DISPLAYS = (
    "from IPython.display import display, HTML\nprint('before')\ndisplay(HTML('<b>hi</b>'))\n6 * 7"
)


async def test_script_semantics_by_default(run):
    result = await run("python", DISPLAYS, stdin="")
    assert result["status"] == "ok" and result["stdout"] == "before\n"
    assert [o["output_type"] for o in result["outputs"]] == ["display_data"]
    assert result["outputs"][0]["data"]["text/html"] == "<b>hi</b>"
    assert result["error"] is None


async def test_interactive_gives_cell_semantics(run):
    result = await run("python", DISPLAYS, interactive=True)
    kinds = [o["output_type"] for o in result["outputs"]]
    assert kinds == ["display_data", "execute_result"]
    assert result["outputs"][1]["data"] == {"text/plain": "42"}


async def test_a_cells_exception_is_the_results_error(run):
    result = await run("python", "print('x')\n{}['missing']", interactive=True)
    assert result["status"] == "error" and result["exit_code"] == 1
    assert result["error"]["ename"] == "KeyError" and result["error"]["evalue"] == "'missing'"
    assert result["stderr"] == "" and result["stdout"] == "x\n"
    # A script's traceback stays on stderr, as `python3 main.py` writes it.
    script = await run("python", "{}['missing']", stdin="")
    assert script["error"] is None and "KeyError: 'missing'" in script["stderr"]


async def test_a_plot_comes_back_as_png(run):
    code = "import matplotlib.pyplot as plt\nplt.plot([3, 1, 2])\nplt.savefig('x.png')\nplt.show()"
    result = await run("python-data", code, stdin="")
    assert result["status"] == "ok", result
    (plot,) = result["outputs"]
    assert base64.b64decode(plot["data"]["image/png"]).startswith(PNG)


async def test_display_files_of_a_compiled_language(run):
    result = await run("c", C_DISPLAY, stdin="")
    assert result["status"] == "ok" and result["stdout"] == "written\n"
    assert [o["data"] for o in result["outputs"]] == [
        {"text/html": "<table><tr><td>c</td></tr></table>"},
        {"application/json": {"n": 3}},
    ]


async def test_sse_sends_each_output_when_it_happens(jp_fetch):
    code = (
        "import time\nfrom IPython.display import display, Markdown\n"
        "display(Markdown('*one*'))\ntime.sleep(0.5)\nprint('then')"
    )
    response = await jp_fetch(
        "lang",
        "python",
        method="POST",
        body=json.dumps({"code": code}),
        headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
    )
    events = []
    for block in response.body.decode().strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    names = [name for name, _ in events]
    assert names.index("display") < names.index("stdout") < names.index("result")
    display = next(data for name, data in events if name == "display")
    assert display["data"]["text/markdown"] == "*one*"
    assert events[-1][1]["outputs"] == [display]


class TestBounds:
    @pytest.fixture
    def braindrill_config(self):
        return {"LimitsPolicy": {"display_bytes": 20000, "output_record_bytes": 5000}}

    async def test_a_display_flood_is_output_limit_with_what_came_before(self, run):
        code = (
            "from IPython.display import display, HTML\n"
            "for i in range(1000):\n    display(HTML('<p>%04d</p>' % i + 'x' * 500))"
        )
        result = await run("python", code, stdin="")
        assert result["status"] == "output_limit"
        kept = result["outputs"]
        assert 10 <= len(kept) < 1000
        assert [o["data"]["text/html"][:11] for o in kept[:2]] == ["<p>0000</p>", "<p>0001</p>"]

    async def test_an_output_over_the_cap_is_dropped_and_said(self, run):
        code = (
            "from IPython.display import display, HTML\n"
            "display(HTML('x' * 10000))\ndisplay(HTML('small'))"
        )
        result = await run("python", code, stdin="")
        assert result["status"] == "ok"
        assert [o["data"]["text/html"] for o in result["outputs"]] == ["small"]
        assert "dropped" in result["stderr"] and "per-output cap" in result["stderr"]

    async def test_ordinary_output_that_looks_like_a_record_is_output(self, run):
        fake = '\\x1ebraindrill-output 0123456789abcdef 20\\n{"output_type": "x"}'
        result = await run("python", f"print('{fake}')", stdin="")
        assert result["status"] == "ok" and result["outputs"] == []
        assert result["stdout"].startswith("\x1ebraindrill-output 0123456789abcdef 20")
