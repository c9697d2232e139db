"""The tests on real containers: every test in this folder is marked ``docker`` here (so a module
need not say it), with the fixtures only they use. Without a Docker Engine they skip locally and
FAIL under CI=true (``pytest_runtest_setup`` in ``tests/conftest.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jupyter_client import KernelManager

from braindrill_ext.kernel import embedded
from tests.helpers import TIMEOUT, containers_left, docker_problem, leftover_containers

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.docker)


@pytest.fixture
def run(jp_fetch):
    """POST code to /lang/<language> and return the decoded JSON Result."""

    async def run(language, code=None, **fields):
        if fields:
            body = json.dumps({"code": code, **fields})
            headers = {"Content-Type": "application/json"}
        else:
            body, headers = code, {}
        response = await jp_fetch("lang", language, method="POST", body=body, headers=headers)
        assert response.code == 200
        return json.loads(response.body)

    return run


@pytest.fixture(autouse=True, scope="module")
def _no_leftover_containers():
    """After each test module (its servers and kernels shut down) no container is left."""
    yield
    if docker_problem() is None:
        assert leftover_containers() == []


@pytest.fixture(scope="module")
def embedded_sandbox():
    """The embedded engine's sandbox kind: the product's default, ``auto``; a module whose
    kernels must work with both kinds says ``embedded_sandbox = helpers.embedded_sandboxes``."""
    return "auto"


@pytest.fixture(scope="module")
def embedded_config():
    """Override to change the embedded engine's config in a test module (merged by section)."""
    return {}


@pytest.fixture(scope="module")
def embedded_engine(tmp_path_factory, embedded_sandbox, embedded_config):
    """The process's embedded engine, which the kernels a test module starts with jupyter_client
    use; configured as an operator configures a script's, by a ``jupyter_server_config.json`` in
    the Jupyter config path (by default: warm pools off, so that every container seen belongs to
    a running cell). Stopped at the end of the module, when nothing may be left."""
    config_dir = tmp_path_factory.mktemp("jupyter-config")
    config = {"WarmPools": {"enabled": False}, "ExecutionEngine": {"sandbox": embedded_sandbox}}
    for section, values in embedded_config.items():
        config[section] = {**config.get(section, {}), **values}
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(config))
    embedded.shutdown()  # another module's, made with another configuration
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_CONFIG_DIR", str(config_dir))
    try:
        engine = embedded.kernel_loop().engine
        assert engine.pools.enabled is config["WarmPools"]["enabled"]  # read from the file
        assert engine.sandbox == embedded_sandbox
        yield engine
    finally:
        embedded.shutdown()
        mp.undo()
    assert containers_left() == []


@pytest.fixture
def start():
    """Start Braindrill kernels from this process with jupyter_client (``start(language)`` →
    (manager, client)); shut them down afterwards and check no container is left but warm ones
    (those the engine's pools keep, if on; the engine's own teardown checks those)."""
    started = []

    def start(language="python"):
        km = KernelManager(kernel_name=f"braindrill-{language}")
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=TIMEOUT)
        started.append((km, kc))
        return km, kc

    yield start
    for km, kc in started:
        kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    assert containers_left(include_pooled=False) == []
