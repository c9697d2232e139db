"""Worker host endpoints: mutual TLS works, a client without a valid certificate is refused, and
the host list is validated (``tcp://`` without TLS only when marked insecure, ``ssh://`` via the
``ssh`` client)."""

from __future__ import annotations

import asyncio
import importlib.util

import docker
import pytest
from traitlets import TraitError

from braindrill_ext.engine import ExecutionEngine
from braindrill_ext.errors import TRANSPORT_ERRORS
from braindrill_ext.views import workers_model


def _client(url, ca, cert=None, key=None):
    tls = docker.tls.TLSConfig(client_cert=(cert, key) if cert else None, ca_cert=ca, verify=True)
    client = docker.DockerClient(base_url=url, tls=tls, version="1.41", timeout=10)
    client.api.trust_env = False
    return client


@pytest.mark.docker
def test_mutual_tls_client_is_served(worker_daemons):
    certs = worker_daemons.certs
    client = _client(worker_daemons[0].tcp_url, certs["ca"], certs["cert"], certs["key"])
    try:
        assert client.ping() is True
        assert client.version()["ApiVersion"]
    finally:
        client.close()


@pytest.mark.docker
@pytest.mark.parametrize("which", ["no certificate", "certificate from another CA"])
def test_client_without_a_valid_certificate_is_refused(worker_daemons, which):
    certs = worker_daemons.certs
    if which == "no certificate":
        client = _client(worker_daemons[0].tcp_url, certs["ca"])
    else:
        client = _client(
            worker_daemons[0].tcp_url, certs["ca"], certs["rogue_cert"], certs["rogue_key"]
        )
    try:
        with pytest.raises(TRANSPORT_ERRORS) as e:
            client.ping()
        assert "SSL" in str(e.value) or "certificate" in str(e.value).lower()
    finally:
        client.close()


@pytest.mark.docker
async def test_manager_marks_a_host_with_a_bad_certificate_unhealthy(worker_daemons):
    certs = worker_daemons.certs
    good = worker_daemons[0].spec(slots=1)
    bad = {**worker_daemons[1].spec(slots=1), "name": "bad"}
    bad["tls"] = {"ca": certs["ca"], "cert": certs["rogue_cert"], "key": certs["rogue_key"]}
    manager = ExecutionEngine(hosts=[good, bad], image_source_url="none")
    try:
        await manager.ensure_started()
        status = {w["name"]: w for w in workers_model(manager)["workers"]}
        assert status["w1"]["healthy"] is True
        assert status["bad"]["healthy"] is False
        assert "SSL" in status["bad"]["last_error"] or "certif" in status["bad"]["last_error"]
    finally:
        await manager.stop()


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
