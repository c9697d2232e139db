"""A slot runner's template (issue 21): every nested sandbox is a fork of one interpreter that
imported IPython and the language's preloads before any code existed; what an execution does to
its copy -- a preloaded module's globals, ``sys.modules``, numpy's print options, pandas'
options, matplotlib's rc, ``os.environ``, a file in /tmp -- is its own, and the next execution
in the same runner finds the template as it was."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("jp_fetch")

CHANGE = """
import os, socket, sys
import numpy as np, pandas as pd, matplotlib
np.set_printoptions(precision=2)
np.BRAINDRILL_MARK = 1
pd.options.display.max_rows = 3
matplotlib.rcParams["lines.linewidth"] = 9.0
os.environ["BRAINDRILL_MARK"] = "1"
open("/tmp/mark", "w").write("left by the first execution")
sys.modules["braindrill_fake"] = object()
del sys.modules["json"]
print(socket.gethostname())
"""
LOOK = """
import os, socket, sys
import numpy as np, pandas as pd, matplotlib
print(socket.gethostname())
print(np.get_printoptions()["precision"], hasattr(np, "BRAINDRILL_MARK"),
      pd.options.display.max_rows, matplotlib.rcParams["lines.linewidth"],
      "BRAINDRILL_MARK" in os.environ, os.path.exists("/tmp/mark"),
      "braindrill_fake" in sys.modules, "json" in sys.modules, "pandas" in sys.modules)
"""


@pytest.fixture
def sandbox_kind():
    return "nested"


@pytest.fixture
def braindrill_config():
    return {"ExecutionEngine": {"slots": 1}}  # one runner: the second execution forks it again


async def run(jp_fetch, code: str) -> dict:
    body = json.dumps({"code": code})
    headers = {"Content-Type": "application/json"}
    response = await jp_fetch("lang", "python-data", method="POST", body=body, headers=headers)
    return json.loads(response.body)


async def test_the_next_execution_finds_the_template_untouched(jp_fetch):
    first = await run(jp_fetch, CHANGE)
    assert first["status"] == "ok", first
    second = await run(jp_fetch, LOOK)
    assert second["status"] == "ok", second
    host, seen = second["stdout"].splitlines()
    assert host.rpartition("-")[0] == first["stdout"].strip().rpartition("-")[0]  # one runner
    assert host != first["stdout"].strip()  # a fresh sandbox of it
    # numpy's precision 8, no mark, pandas' 60 rows, matplotlib's 1.5, no variable, no file,
    # no fake module, json still there, pandas preloaded
    assert seen.split() == ["8", "False", "60", "1.5", "False", "False", "False", "True", "True"]


# The template warms the preloads up (prestart.warm_up: a frame described, grouped, shown and
# written as CSV in memory, a histogram drawn to PNG): none of it shows in a cell.
FIRST_CELL = """
import os, sys
import matplotlib.pyplot as plt
print(plt.get_fignums(), sorted(os.listdir('.')), sorted(os.listdir('/tmp')))
plt.plot([1, 2])
print(plt.gcf().number)
"""


async def test_the_warm_up_leaves_nothing_a_cell_sees(jp_fetch):
    body = json.dumps({"code": FIRST_CELL, "interactive": True})
    headers = {"Content-Type": "application/json"}
    response = await jp_fetch("lang", "python-data", method="POST", body=body, headers=headers)
    result = json.loads(response.body)
    assert result["status"] == "ok", result
    assert result["stdout"] == "[] ['.braindrill', 'main.py'] []\n1\n", result  # no figure or file
    images = [o for o in result["outputs"] if "image/png" in o.get("data", {})]
    assert len(images) == 1, result["outputs"]  # the cell's own figure only
