"""A real browser: JupyterLab (a ``jupyter lab`` subprocess with the Braindrill extension) in
headless Chromium driven by Playwright opens a notebook on the Braindrill Python kernel, runs a
cell, and the output is read back from the page; a python-data notebook shows an inline plot;
Tab after ``import os; os.pa`` offers ``path``. The screenshots are kept as
``artifacts/jupyterlab.png``, ``artifacts/jupyterlab-plot.png`` and
``artifacts/jupyterlab-tab.png``.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` and
``jupyterlab`` Python packages; Playwright's own browser download is not used. Without them the
test skips locally and FAILS under CI=true, like the Docker tests.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import urllib.request

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.helpers import ROOT, eventually_sync, free_port, leftover_containers, require

CHROMIUM = os.environ.get("BRAINDRILL_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts"
TIMEOUT_S = 120
CODE = 'import os\nprint("uid", os.getuid(), "answer", 6 * 7)'
EXPECTED = "uid 65534 answer 42"  # the sandbox's user: the cell ran in a container, not the server


def _need(what: str, ok: bool) -> None:
    require(None if ok else f"the browser test needs {what}")


@pytest.fixture
def jupyterlab(tmp_path):
    """A ``jupyter lab`` server on a free port, without warm pools (every container seen belongs
    to a cell); yields (base URL, token, root); stopped after, when none of its containers may be
    left."""
    yield from _jupyterlab(tmp_path, warm_pools=False)


@pytest.fixture
def jupyterlab_warm(tmp_path):
    """The same, with warm pools as by default."""
    yield from _jupyterlab(tmp_path, warm_pools=True)


def _jupyterlab(tmp_path, warm_pools: bool):
    _need("JupyterLab (pip install jupyterlab)", shutil.which("jupyter-lab") is not None)
    port, token = free_port(), secrets.token_hex(16)
    root = tmp_path / "root"
    root.mkdir()
    config = {
        "ServerApp": {
            "ip": "127.0.0.1",
            "port": port,
            "port_retries": 0,
            "open_browser": False,
            "allow_root": True,
            "root_dir": str(root),
            "jpserver_extensions": {"braindrill_ext": True},
        },
        "IdentityProvider": {"token": token},
        "WarmPools": {"enabled": warm_pools},
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"},
    }
    config_file = tmp_path / "jupyter_server_config.json"
    config_file.write_text(json.dumps(config))
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", f"--config={config_file}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{url}/api/status", token, proc)
        yield url, token, root
    finally:
        # SIGTERM: Jupyter stops its extensions and kernels (two SIGINTs can kill it outright:
        # its confirmation thread finds no terminal and puts back the default handler).
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    assert leftover_containers(pid=proc.pid) == []


def _wait_until_up(url: str, token: str, proc) -> None:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    if not eventually_sync(up, TIMEOUT_S, every_s=0.3):
        raise RuntimeError("jupyter lab did not come up")


def _run_in_browser(
    jupyterlab, kernelspec, code: str, shot: str, read, keys=("Shift+Enter",), ready=None
):
    """Open a notebook of one cell on ``kernelspec`` in JupyterLab in Chromium, press ``keys``
    in its editor (run the cell) once the kernel is idle (and ``ready()`` is true), and return
    ``read(page)``; the page's screenshot is kept as ``artifacts/<shot>``."""
    _need(f"Chromium at {CHROMIUM} (apt-get install chromium)", os.path.exists(CHROMIUM))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("Playwright (pip install playwright)", False)
    url, token, root = jupyterlab
    nb = new_notebook(cells=[new_code_cell(code)])
    nb.metadata["kernelspec"] = kernelspec
    nbformat.write(nb, root / "sandboxed.ipynb")
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        try:
            page.goto(f"{url}/lab/tree/sandboxed.ipynb?token={token}", timeout=TIMEOUT_S * 1000)
            editor = page.locator(".jp-Notebook .jp-Cell .cm-content").first
            editor.wait_for(timeout=TIMEOUT_S * 1000)
            page.locator(".jp-Notebook-toolbar, .jp-NotebookPanel-toolbar").first.wait_for(
                timeout=TIMEOUT_S * 1000
            )
            # The kernel named in the notebook's metadata starts by itself: wait until the status
            # bar shows it connected and idle (the toolbar's indicator says idle before that).
            page.locator(".jp-StatusBar-Widget").filter(
                has_text=f"{kernelspec['display_name']} | Idle"
            ).first.wait_for(timeout=TIMEOUT_S * 1000)
            if ready is not None:
                assert eventually_sync(ready, TIMEOUT_S)
            editor.click()
            for key in keys:
                page.keyboard.press(key)
            return read(page)
        finally:
            page.screenshot(path=str(ARTIFACTS / shot))
            browser.close()


def test_jupyterlab_runs_a_cell_in_a_container(jupyterlab):
    def read(page):
        output = page.locator(".jp-OutputArea-output").filter(has_text="answer").first
        output.wait_for(timeout=TIMEOUT_S * 1000)
        return output.inner_text(), page.locator(".jp-KernelName").first.inner_text()

    spec = {
        "name": "braindrill-python",
        "display_name": "Python (Braindrill)",
        "language": "python",
    }
    text, kernel_name = _run_in_browser(jupyterlab, spec, CODE, "jupyterlab.png", read)
    assert text.strip() == EXPECTED
    assert "Braindrill" in kernel_name


def test_jupyterlab_shows_an_inline_plot(jupyterlab):
    """A matplotlib plot from a sandboxed python-data cell appears inline as an image; the
    screenshot is ``artifacts/jupyterlab-plot.png``."""

    def read(page):
        image = page.locator(".jp-OutputArea-output img").first
        image.wait_for(timeout=TIMEOUT_S * 1000)
        return image.evaluate("img => [img.naturalWidth, img.naturalHeight, img.src.slice(0, 22)]")

    spec = {
        "name": "braindrill-python-data",
        "display_name": "Python + SciPy (Braindrill)",
        "language": "python",
    }
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 2, 8])\nplt.title('in a container')"
    width, height, src = _run_in_browser(jupyterlab, spec, code, "jupyterlab-plot.png", read)
    assert src == "data:image/png;base64,"
    assert width > 200 and height > 150


def test_jupyterlab_tab_completes_in_a_sandbox(jupyterlab_warm):
    """Open a notebook, type ``import os; os.pa``, press Tab: JupyterLab's completer offers
    ``path``, answered by IPython's completer in a sandbox holding the kernel's state. JupyterLab
    drops a completion that takes over 1 s, about what starting a sandbox's runner takes: the
    kernel's start warms one (the server's default warm pools), which the Tab finds."""
    url, token, _ = jupyterlab_warm

    def warmed():  # the runner the kernel's start asked for
        request = urllib.request.Request(
            f"{url}/braindrill/workers", headers={"Authorization": f"token {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            pools = json.loads(response.read())["workers"][0]["pool"]
        return pools.get("python", {}).get("ready", 0) >= 1

    def read(page):
        completer = page.locator(".jp-Completer")
        completer.wait_for(timeout=TIMEOUT_S * 1000)
        return completer.locator(".jp-Completer-item").all_inner_texts()

    spec = {
        "name": "braindrill-python",
        "display_name": "Python (Braindrill)",
        "language": "python",
    }
    keys = ("End", "Tab")
    items = _run_in_browser(
        jupyterlab_warm, spec, "import os; os.pa", "jupyterlab-tab.png", read, keys, warmed
    )
    assert any("os.path" in item.split() for item in items), items
