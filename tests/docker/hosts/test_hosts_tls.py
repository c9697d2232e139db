"""Worker host endpoints on real engines (``tests/hosts.py``): mutual TLS works, a client without a
valid certificate is refused, and an engine marks a host with a bad certificate unhealthy. (The
host list's validation: tests/unit/hosts/test_hosts_tls.py.)"""

from __future__ import annotations

import docker
import pytest

from braindrill_ext.engine import ExecutionEngine
from braindrill_ext.errors import TRANSPORT_ERRORS


def _client(url, ca, cert=None, key=None):
    tls = docker.tls.TLSConfig(client_cert=(cert, key) if cert else None, ca_cert=ca, verify=True)
    client = docker.DockerClient(base_url=url, tls=tls, version="1.41", timeout=10)
    client.api.trust_env = False
    return client


def test_mutual_tls_client_is_served(worker_daemons):
    certs = worker_daemons.certs
    client = _client(worker_daemons[0].tcp_url, certs["ca"], certs["cert"], certs["key"])
    try:
        assert client.ping() is True
        assert client.version()["ApiVersion"]
    finally:
        client.close()


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


async def test_manager_marks_a_host_with_a_bad_certificate_unhealthy(worker_daemons):
    certs = worker_daemons.certs
    good = worker_daemons[0].spec(slots=1)
    bad = {**worker_daemons[1].spec(slots=1), "name": "bad"}
    bad["tls"] = {"ca": certs["ca"], "cert": certs["rogue_cert"], "key": certs["rogue_key"]}
    manager = ExecutionEngine(hosts=[good, bad], image_source_url="none")
    try:
        await manager.ensure_started()
        status = {w["name"]: w for w in manager.describe_hosts()["workers"]}
        assert status["w1"]["healthy"] is True
        assert status["bad"]["healthy"] is False
        assert "SSL" in status["bad"]["last_error"] or "certif" in status["bad"]["last_error"]
    finally:
        await manager.stop()
