"""docker-compose.yaml: what can be checked without a registry.

``docker compose up`` cannot run here: the master's image is FROM python:3.12-slim and the workers
are docker:dind, and this machine reaches no container registry. So the file is validated by
``docker-compose config`` (the Compose implementation resolves and checks it), its shape is
asserted, and the master's entry point is run in its config-only mode: the config it writes must
be accepted by the remote kernel manager.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml

from braindrill_ext.engine import ExecutionEngine
from tests.helpers import ROOT, require


def _compose() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.fixture
def compose():
    """The compose command; without one the test skips locally and fails under CI=true."""
    command = _compose()
    require(None if command else "no docker-compose / docker compose to validate the file")
    return command


def _config(compose, env) -> subprocess.CompletedProcess:
    """``<compose> config`` of the repository's docker-compose.yaml under ``env``."""
    return subprocess.run(
        [*compose, "-f", str(ROOT / "docker-compose.yaml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture
def compose_config(compose):
    done = _config(compose, {**os.environ, "BRAINDRILL_TOKEN": "test-token"})
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_file_is_valid_and_complete(compose_config):
    services = compose_config["services"]
    assert set(services) == {"master", "worker1", "worker2", "worker3"}
    for name in ("worker1", "worker2", "worker3"):
        worker = services[name]
        assert worker["image"].startswith("docker:") and "dind" in worker["image"]
        assert worker["privileged"] is True
        assert worker["hostname"] == name
        assert worker["environment"]["DOCKER_TLS_CERTDIR"] == "/certs"
        assert "healthcheck" in worker
        # Each its own engine: its own data volume and certificate volume.
        targets = _mounts(worker["volumes"])
        assert targets["/var/lib/docker"][0] == f"{name}-engine"
        assert targets["/certs"][0] == f"{name}-certs"
    master = services["master"]
    assert master["build"]["dockerfile"].endswith("docker/Dockerfile")
    assert master["environment"]["BRAINDRILL_TOKEN"] == "test-token"
    assert master["environment"]["BRAINDRILL_WORKERS"].split() == ["worker1", "worker2", "worker3"]
    mounts = _mounts(master["volumes"])
    for name in ("worker1", "worker2", "worker3"):
        assert mounts[f"/certs/{name}"] == (f"{name}-certs", True)
        assert master["depends_on"][name]["condition"] == "service_healthy"


def _mounts(volumes) -> dict:
    """{target: (source, read_only)} from Compose v1's short or v2's long volume syntax."""
    found = {}
    for v in volumes:
        if isinstance(v, str):
            source, target, *mode = v.split(":")
            found[target] = (source, mode == ["ro"])
        else:
            found[v["target"]] = (v["source"], bool(v.get("read_only")))
    return found


def test_compose_refuses_to_start_without_a_token(compose):
    done = _config(compose, {k: v for k, v in os.environ.items() if k != "BRAINDRILL_TOKEN"})
    assert done.returncode != 0
    assert "BRAINDRILL_TOKEN" in done.stderr


def test_master_entrypoint_writes_a_config_the_manager_accepts(tmp_path):
    certs = tmp_path / "certs"
    for name in ("worker1", "worker2", "worker3"):
        client = certs / name / "client"
        client.mkdir(parents=True)
        for pem in ("ca.pem", "cert.pem", "key.pem"):
            (client / pem).write_text("placeholder\n")
    config_path = tmp_path / "jupyter_server_config.json"
    env = {
        **os.environ,
        "BRAINDRILL_TOKEN": "t0ken",
        "BRAINDRILL_CERTS": str(certs),
        "BRAINDRILL_CONFIG": str(config_path),
        "BRAINDRILL_SLOTS": "3",
        "BRAINDRILL_CONFIG_ONLY": "1",
    }
    entry = ROOT / "docker" / "master-entrypoint.sh"
    done = subprocess.run(["sh", str(entry)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    config = json.loads(config_path.read_text())
    assert config["IdentityProvider"]["token"] == "t0ken"
    assert config["ServerApp"]["jpserver_extensions"] == {"braindrill_ext": True}
    rkm = config["ExecutionEngine"]
    manager = ExecutionEngine(**rkm)
    try:
        assert [h.name for h in manager.workers] == ["worker1", "worker2", "worker3"]
        assert all(h.slots == 3 for h in manager.workers)
        assert manager.workers[0].client.api.base_url == "https://worker1:2376"
        assert manager.image_source is None
    finally:
        for host in manager.workers:
            host.close()


def test_dockerfile_copies_only_what_the_repo_has():
    """The master image cannot be built here (no registry for its base image): check at least
    that it starts from the official Python image and that everything it copies exists."""
    lines = (ROOT / "docker" / "Dockerfile").read_text().splitlines()
    assert "FROM python:3.12-slim" in lines
    copied = [p for line in lines if line.startswith("COPY ") for p in line.split()[1:-1]]
    assert "braindrill_ext" in copied and "kernels" in copied
    for path in copied:
        assert (ROOT / path).exists(), path
