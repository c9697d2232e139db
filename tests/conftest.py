"""Fixtures shared by both kinds of tests: ``unit/`` (no Docker) and ``docker/`` (real containers;
every test there is marked ``docker`` by ``docker/conftest.py``, which has the fixtures only they
use). Tests marked ``docker`` need a Docker Engine: without one they skip locally and FAIL under
CI=true (so a broken CI machine cannot pass by skipping). The worker-host engines
(``worker_daemons``) are the fixtures of ``hosts.py``, registered here as a plugin; plain helpers
are in ``helpers.py``."""

from __future__ import annotations

import os
import sys

import pytest

from braindrill_ext.hosts.versions import default_cache_path

from .helpers import docker_problem, require

pytest_plugins = ["pytest_jupyter.jupyter_server", "tests.hosts"]

TOKEN = "braindrill-test-token"


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
    """The test server's default sandbox kind: the product's, ``auto`` (nested sandboxes where
    the host allows them, as here). A module whose tests must hold for both kinds says
    ``sandbox_kind = helpers.sandbox_kinds``."""
    return "auto"


@pytest.fixture
def jp_server_config(braindrill_config, sandbox_kind):
    config = {
        "ServerApp": {"jpserver_extensions": {"braindrill_ext": True}},
        "IdentityProvider": {"token": TOKEN},
        "ImageVersions": {"cache_path": VERSIONS},
        "ExecutionEngine": {"sandbox": sandbox_kind},
    }
    for section, values in braindrill_config.items():
        config.setdefault(section, {}).update(values)
    return config


@pytest.fixture
def engine(jp_serverapp):
    """The test server's ``ExecutionEngine``."""
    return jp_serverapp.web_app.settings["braindrill_engine"]


@pytest.fixture
def sessions(jp_serverapp):
    """The test server's ``RestSessionManager``."""
    return jp_serverapp.web_app.settings["braindrill_sessions"]
