"""The worker-host list an engine is given: ``tcp://`` without TLS only when marked insecure,
``ssh://`` via the ``ssh`` client, bad entries refused (through ``ExecutionEngine.hosts``; each
entry's own checks: test_hostspec.py). No engine is pinged. (Mutual TLS with real engines:
tests/docker/hosts/test_hosts_tls.py.)"""

from __future__ import annotations

import asyncio
import importlib.util

import pytest
from traitlets import TraitError

from braindrill_ext.engine import ExecutionEngine


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "a", "url": "tcp://10.0.0.1:2375"}, "without tls is refused"),
        ({"name": "a", "url": "tcp://10.0.0.1:2376", "tls": {"ca": "x"}}, "tls must be"),
        (
            {"name": "a", "url": "unix:///x.sock", "tls": {"ca": "c", "cert": "c", "key": "k"}},
            "tcp",
        ),
        ({"name": "a", "url": "http://10.0.0.1"}, "must start with"),
        ({"name": "a", "slots": 0}, "slots"),
        ({"name": "a", "memory_mib": "1g"}, "memory_mib must be an integer"),
        ({"name": "a", "memory_mib": 0}, "memory_mib must be an integer"),
        ({"name": "master"}, "unique name"),
        ({"url": "unix:///x.sock"}, "unique name"),
        ({"name": "a", "colour": "red"}, "unknown keys"),
    ],
)
def test_bad_host_specs_are_refused(spec, message):
    with pytest.raises(TraitError, match=message):
        ExecutionEngine(hosts=[spec])


def test_duplicate_names_are_refused():
    with pytest.raises(TraitError, match="unique name"):
        ExecutionEngine(hosts=[{"name": "a"}, {"name": "a"}])


def test_insecure_tcp_must_be_explicit():
    manager = ExecutionEngine(
        hosts=[{"name": "a", "url": "tcp://127.0.0.9:2375", "insecure": True}]
    )
    try:
        assert manager.workers[0].client.api.base_url == "http://127.0.0.9:2375"
    finally:
        asyncio.run(manager.stop())


def test_ssh_host_config():
    """ssh:// shells out to the ``ssh`` client (so ~/.ssh/config, keys and agents apply); the SDK
    still imports paramiko for it. Without paramiko the config is refused with the fix."""
    spec = {"name": "a", "url": "ssh://braindrill@worker.example:22", "slots": 3}
    if importlib.util.find_spec("paramiko") is None:
        with pytest.raises(TraitError, match="paramiko"):
            ExecutionEngine(hosts=[spec])
        return
    manager = ExecutionEngine(hosts=[spec])
    try:
        host = manager.workers[0]
        assert host.slots == 3
        assert host.client.api.base_url == "http+docker://ssh"
    finally:
        asyncio.run(manager.stop())
