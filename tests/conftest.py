"""Shared fixtures. Tests marked ``docker`` need a Docker Engine: without one they skip locally
and FAIL under CI=true (so a broken CI machine cannot pass by skipping). The worker-host engines
(``worker_daemons``) are the fixtures of ``hosts.py``, registered here as a plugin; plain helpers
are in ``helpers.py``."""

from __future__ import annotations

import json
import os
import sys

import docker
import pytest
from jupyter_client import KernelManager

from braindrill_ext.kernel import embedded
from braindrill_ext.versions import default_cache_path

from .helpers import TIMEOUT, containers_left, leftover_containers, require

pytest_plugins = ["pytest_jupyter.jupyter_server", "tests.hosts"]

TOKEN = "braindrill-test-token"


def _docker_problem() -> str | None:
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as e:
        return f"no Docker Engine answers: {e}"
    client.close()
    return None  # a missing image fails its test with a 503 naming `braindrill-images prepare`


_PROBLEM: list = []


def docker_problem() -> str | None:
    """Why Docker cannot be used (asked once per session), or None."""
    if not _PROBLEM:
        _PROBLEM.append(_docker_problem())
    return _PROBLEM[0]


def pytest_runtest_setup(item):
    if item.get_closest_marker("docker") is not None:
        require(docker_problem())


@pytest.fixture
def jp_env_jupyter_path():
    """pytest-jupyter isolates Jupyter's paths; keep the environment's share/jupyter, where
    ``pip install`` put the Braindrill kernelspecs (the languages)."""
    return os.path.join(sys.prefix, "share", "jupyter")


@pytest.fixture
def braindrill_config():
    """Override to change the engine's traitlets config in a test module."""
    return {}


# Where `braindrill-images prepare` (.ci/setup) recorded the runtimes' versions, read before
# pytest-jupyter points each test server's Jupyter data directory elsewhere: a test server, like a
# real one, shares the machine's record.
VERSIONS = default_cache_path()


@pytest.fixture
def sandbox_kind():
    """The test server's default sandbox kind. A module whose tests must hold for both kinds
    says ``sandbox_kind = helpers.sandbox_kinds``."""
    return "container"


@pytest.fixture
def jp_server_config(braindrill_config, sandbox_kind):
    config = {
        "ServerApp": {"jpserver_extensions": {"braindrill_ext": True}},
        "IdentityProvider": {"token": TOKEN},
        "ImageVersions": {"cache_path": VERSIONS},
        "RemoteKernelManager": {"sandbox": sandbox_kind},
    }
    for section, values in braindrill_config.items():
        config.setdefault(section, {}).update(values)
    return config


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
def _no_leftover_containers(request):
    """After each test module with Docker tests (its servers and kernels shut down) no container
    is left. A module of pure tests never asks Docker."""
    yield
    mine = [i for i in request.session.items if getattr(i, "module", None) is request.module]
    if any(i.get_closest_marker("docker") for i in mine) and docker_problem() is None:
        assert leftover_containers() == []


@pytest.fixture(scope="module")
def embedded_sandbox():
    """The embedded engine's sandbox kind; a module whose kernels must work with both says
    ``embedded_sandbox = helpers.embedded_sandboxes``."""
    return "container"


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
