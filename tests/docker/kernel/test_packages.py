"""``%pip`` in Python kernels on real containers, from a simple index this test serves on
127.0.0.1 (``tests/wheel_index.py``: wheels built here, downloads counted): later cells (fresh
sandboxes) import what a cell installed; a second kernel is served from the server's cache; a
refused name and going over the cap leave the kernel as it was; a preloaded package's version
cannot change; and the sandbox still reaches nothing, not even a server on this machine.
(Real PyPI over REST: tests/docker/api/test_packages.py; without Docker:
tests/unit/engine/test_packages.py.)"""

from __future__ import annotations

import socket
import threading

import pytest

from tests.helpers import execute_cell as run
from tests.helpers import stream_text
from tests.wheel_index import WheelIndex, make_wheel

TINY = "bdtiny-1.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    wheels = tmp_path_factory.mktemp("wheels")
    make_wheel(wheels, "bdtiny", "1.0")
    make_wheel(wheels, "bdrefused", "1.0")
    make_wheel(wheels, "bdbig", "1.0", size=3 << 20)
    with WheelIndex(wheels) as served:
        yield served


@pytest.fixture(scope="module")
def embedded_config(index, tmp_path_factory):
    return {
        "Packages": {
            "enabled": True,
            "index_url": index.url,
            "cache_dir": str(tmp_path_factory.mktemp("wheel-cache")),
            "refused": ["bdrefused"],
            "max_mib": 2,
        }
    }


def ok(kc, code: str) -> str:
    reply, messages = run(kc, code)
    assert reply["status"] == "ok", (reply, stream_text(messages, "stderr"))
    return stream_text(messages)


def failed(kc, code: str) -> dict:
    reply, _ = run(kc, code)
    assert reply["status"] == "error", reply
    return reply


def test_a_package_installed_in_a_cell_is_imported_by_later_cells(embedded_engine, start, index):
    _, kc = start("python")
    assert failed(kc, "import bdtiny")["ename"] == "ModuleNotFoundError"  # not in the image
    said = ok(kc, "%pip install bdtiny==1.0")
    assert "Successfully installed bdtiny-1.0 (for this kernel)" in said
    assert index.downloads(TINY) == 1
    assert ok(kc, "import bdtiny\nprint(bdtiny.VALUE)") == "bdtiny 1.0\n"
    assert ok(kc, "print(bdtiny.VALUE)") == "bdtiny 1.0\n"  # the module, carried by name
    assert ok(kc, "%pip list") == "Package Version\n------- -------\nbdtiny  1.0\n"
    assert ok(kc, "!pip freeze") == "bdtiny==1.0\n"
    # a second kernel: the same version from the server's cache, nothing downloaded
    _, other = start("python")
    assert "Successfully installed bdtiny-1.0" in ok(other, "pip install -q bdtiny==1.0")
    assert ok(other, "import bdtiny; print(bdtiny.VALUE)") == "bdtiny 1.0\n"
    assert index.downloads(TINY) == 1
    # %reset drops the packages with the state
    assert failed(other, "%reset\nimport bdtiny")["ename"] == "ModuleNotFoundError"


def test_a_cell_with_pip_lines_runs_its_code_after_them(embedded_engine, start):
    _, kc = start("python")
    said = ok(kc, "x = 1\n!pip install bdtiny\nimport bdtiny\nprint(bdtiny.VALUE, x)")
    assert said.endswith("bdtiny 1.0 1\n"), said


def test_refused_and_over_the_cap_leave_the_kernel_as_it_was(embedded_engine, start):
    _, kc = start("python")
    ok(kc, "x = 1\nopen('f.txt', 'w').write('kept')")
    reply = failed(kc, "%pip install bdrefused\nx = 2")
    assert reply["ename"] == "PackageRefused"
    assert reply["evalue"] == "package 'bdrefused' is not allowed on this server"
    reply = failed(kc, "%pip install bdtiny bdbig\nx = 3")
    assert reply["ename"] == "PackagesTooLarge"
    assert "more than Packages.max_mib (2 MiB)" in reply["evalue"], reply
    reply = failed(kc, "%pip install no-such-package-bd")
    assert (
        reply["evalue"] == f"no package named 'no-such-package-bd' on {kc_index(embedded_engine)}"
    )
    assert (
        ok(kc, "%pip list")
        == "No packages installed in this kernel (the sandbox's own are not listed).\n"
    )
    assert ok(kc, "print(x, open('f.txt').read())") == "1 kept\n"
    assert failed(kc, "%pip install --index-url http://x/ bdtiny")["ename"] == "PackageRefused"


def kc_index(engine) -> str:
    return engine.packages.index_url


def test_a_preloaded_packages_version_cannot_change(embedded_engine, start):
    _, kc = start("python-data")
    reply = failed(kc, "%pip install pandas==1.5.3")
    assert reply["evalue"] == (
        "pandas is preloaded in this sandbox: its version cannot change in this kernel or "
        "session (import pandas gives the image's copy)"
    )


def test_the_sandbox_still_reaches_nothing(embedded_engine, start, index):
    """A TCP server on this machine (every interface), and the index itself: a cell with
    packages installed connects to neither."""
    server = socket.create_server(("0.0.0.0", 0))
    port = server.getsockname()[1]
    accepted = []
    server.settimeout(0.2)

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                continue

    stop = threading.Event()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    addresses = {"127.0.0.1", "172.17.0.1"}
    for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
        addresses.add(info[4][0])
    index_port = int(index.url.split(":")[2].split("/")[0])
    targets = [(a, port) for a in sorted(addresses)] + [("127.0.0.1", index_port)]
    code = (
        "%pip install bdtiny\nimport socket, bdtiny\n"
        f"for target in {targets!r}:\n"
        "    try:\n"
        "        socket.create_connection(target, timeout=2).close()\n"
        "        print('reached', target)\n"
        "    except OSError as e:\n"
        "        print('no', target, type(e).__name__)\n"
    )
    try:
        _, kc = start("python")
        said = ok(kc, code)
    finally:
        stop.set()
        thread.join()
        server.close()
    assert "reached" not in said, said
    assert said.count("no ") == len(targets), said
    assert accepted == []
