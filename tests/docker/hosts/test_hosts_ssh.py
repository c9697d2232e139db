"""An ``ssh://`` worker host, for real: a local OpenSSH server on 127.0.0.5 whose key may only run
``docker system dial-stdio`` against one of the test engines; the Docker SDK shells out to ``ssh``
(configured here through a wrapper on PATH: key, port, pinned host key)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import socket
import subprocess

import docker
import pytest

from braindrill_ext.engine import ExecutionEngine
from braindrill_ext.engine.validation import make_execution
from braindrill_ext.hosts.images import copy_image, image_present
from tests.helpers import eventually_sync, require

SSH_IP, SSH_PORT = "127.0.0.5", 2222
IMAGE = "braindrill/python:bookworm"


def _problem() -> str | None:
    if not shutil.which("sshd") and not os.path.exists("/usr/sbin/sshd"):
        return "the ssh:// test needs sshd (Debian: openssh-server)"
    if not shutil.which("ssh"):
        return "the ssh:// test needs an ssh client (Debian: openssh-client)"
    if importlib.util.find_spec("paramiko") is None:
        return "the Docker SDK needs paramiko for ssh:// (pip install 'docker[ssh]')"
    if not shutil.which("docker"):
        return "the ssh:// test needs the docker CLI for `docker system dial-stdio`"
    return None


@pytest.fixture
def ssh_host(tmp_path, monkeypatch, worker_daemons):
    require(_problem())
    daemon = worker_daemons[0]
    local, remote = docker.from_env(timeout=120), daemon.client(timeout=600)
    try:
        if not image_present(remote, IMAGE):
            copy_image(local, remote, IMAGE)
    finally:
        local.close()
        remote.close()
    d = tmp_path
    for key in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True
        )
    forced = f'command="docker -H {daemon.unix_url} system dial-stdio",restrict'
    (d / "authorized_keys").write_text(f"{forced} {(d / 'client_key.pub').read_text()}")
    (d / "sshd_config").write_text(
        f"ListenAddress {SSH_IP}:{SSH_PORT}\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\n"
    )
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[{SSH_IP}]:{SSH_PORT} {host_pub[0]} {host_pub[1]}\n")
    (d / "ssh_config").write_text(
        f"Host {SSH_IP}\n  Port {SSH_PORT}\n  IdentityFile {d / 'client_key'}\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {d / 'known_hosts'}\n"
        "  StrictHostKeyChecking yes\n  BatchMode yes\n"
    )
    bin_dir = d / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {d / "ssh_config"} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    log = open(d / "sshd.log", "wb")  # the child keeps its own copy
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(d / "sshd_config")], stderr=log)
    log.close()

    def listening() -> bool:
        assert proc.poll() is None, (d / "sshd.log").read_text()
        with socket.socket() as s:
            return s.connect_ex((SSH_IP, SSH_PORT)) == 0

    try:
        assert eventually_sync(listening, 20, every_s=0.1), "sshd did not listen"
        yield f"ssh://root@{SSH_IP}:{SSH_PORT}"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_ssh_worker_host_runs_code(ssh_host):
    manager = ExecutionEngine(
        hosts=[{"name": "over-ssh", "url": ssh_host, "slots": 2}], image_source_url="none"
    )
    try:
        await manager.ensure_started()
        assert manager.describe_hosts()["workers"][0]["healthy"], manager.describe_hosts()
        executions = [
            make_execution(
                manager.registry,
                manager.limits,
                "python",
                f"print('over ssh', {i}, input())",
                stdin=f"in{i}\n",
            )
            for i in range(3)
        ]
        results = await asyncio.gather(*(manager.run(e) for e in executions))
        for i, result in enumerate(results):
            assert result.status.value == "ok", result
            assert result.stdout == f"over ssh {i} in{i}\n"
            assert result.worker == "over-ssh"
        timeout = make_execution(
            manager.registry,
            manager.limits,
            "python",
            "import time; time.sleep(30)",
            limits={"timeout_s": 1},
        )
        assert (await manager.run(timeout)).status.value == "timeout"
    finally:
        await manager.stop()
