"""Extra Docker Engines for the worker-host tests: real ``dockerd`` processes, one per worker host.

``worker_daemons`` (session fixture) starts three engines, each with its own data root, exec root,
pid file and unix socket, and a ``tcp://127.0.0.N:2376`` listener with mutual TLS (a CA, a server
certificate for 127.0.0.N and a client certificate: ``certificates.py``) and the overlay2 storage
driver (vfs if overlay2 does not start). They start empty: the engine copies the images a test
needs from the master's engine. At the end every daemon is stopped, its mounts undone and its
directories removed.

Networking: each engine has a default bridge of its own, ``br-bd-wN``, created here, never
``--bridge=none``; the bridges are deleted at the end, stale ones of a crashed run at the start,
and the host's interfaces, addresses and routes are compared before and after: a difference fails
the session's teardown (why and how: ``networking.py``).

``conftest.py`` registers this module as a plugin (``pytest_plugins``): a test names the fixture
``worker_daemons`` as an argument, nothing to import. Benchmarks start the same engines with
``start_daemons()`` (through ``benchmarks/common.py``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import docker
import pytest

from .certificates import make_certificates
from .helpers import require
from .networking import (
    BRIDGE_PREFIX,
    IP,
    check_networking_unchanged,
    docker0_exists,
    free_subnets,
    host_networking,
    remove_stale_bridges,
    run_ip,
)

DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
TLS_PORT = 2376


# -- daemons ---------------------------------------------------------------------------------------
class Daemon:
    """One extra ``dockerd`` with its own roots, a unix socket and a mutual-TLS TCP listener."""

    def __init__(self, name: str, root: Path, ip: str, certs: dict, storage: str, subnet: str):
        self.name, self.root, self.ip, self.certs, self.storage = name, root, ip, certs, storage
        self.bridge = BRIDGE_PREFIX + name  # the engine's default bridge, made here
        self.subnet = subnet  # its address range, e.g. 10.213.1.0/24; the bridge has the first IP
        self.sock = root / "docker.sock"
        self.proc: subprocess.Popen | None = None
        self.frozen = False

    @property
    def unix_url(self) -> str:
        return f"unix://{self.sock}"

    @property
    def tcp_url(self) -> str:
        return f"tcp://{self.ip}:{TLS_PORT}"

    def spec(self, slots: int = 2, tls: bool = True, **extra) -> dict:
        """This daemon as an entry of ``ExecutionEngine.hosts``."""
        if tls:
            tls_paths = {k: self.certs[k] for k in ("ca", "cert", "key")}
            return {
                "name": self.name,
                "url": self.tcp_url,
                "tls": tls_paths,
                "slots": slots,
                **extra,
            }
        return {"name": self.name, "url": self.unix_url, "slots": slots, **extra}

    def client(self, timeout: int = 30) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.unix_url, timeout=timeout, version="1.41")

    def start(self, timeout: float = 60) -> None:
        config = self.root / "daemon.json"  # empty: ignore the machine's /etc/docker/daemon.json
        config.write_text(json.dumps({}))
        self._make_bridge()
        cmd = [
            DOCKERD,
            f"--config-file={config}",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'dockerd.pid'}",
            f"--host={self.unix_url}",
            f"--host={self.tcp_url}",
            "--tlsverify",
            f"--tlscacert={self.certs['ca']}",
            f"--tlscert={self.certs['server_cert']}",
            f"--tlskey={self.certs['server_key']}",
            # Its own bridge (made by _make_bridge: dockerd creates only docker0 itself, and
            # would pick an address from its pools if the bridge had none). Never --bridge=none.
            f"--bridge={self.bridge}",
            "--iptables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            f"--storage-driver={self.storage}",
            "--shutdown-timeout=2",
            "--log-level=warn",
        ]
        log = open(self.root / "dockerd.log", "ab")  # the child keeps its own copy
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.root / "dockerd.log").read_text()[-2000:]
                raise RuntimeError(f"dockerd {self.name} exited: {tail}")
            client = self.client(timeout=2)
            try:
                client.ping()
                return
            except Exception:  # not up yet
                time.sleep(0.2)
            finally:
                client.close()
        raise RuntimeError(f"dockerd {self.name} did not answer within {timeout} s")

    def _make_bridge(self) -> None:
        """Create the engine's bridge with its address, unless it is there already (``start()``
        after ``kill()``: the bridge outlives the daemon and is reused)."""
        if run_ip("link", "show", "dev", self.bridge, check=False).returncode == 0:
            return
        gateway = next(ipaddress.ip_network(self.subnet).hosts())
        prefix = ipaddress.ip_network(self.subnet).prefixlen
        run_ip("link", "add", "name", self.bridge, "type", "bridge")
        run_ip("addr", "add", f"{gateway}/{prefix}", "dev", self.bridge)

    def _remove_bridge(self) -> None:
        run_ip("link", "delete", "dev", self.bridge, "type", "bridge", check=False)

    def freeze(self) -> None:
        """SIGSTOP the engine: it stops answering, its connections stay open (a hung host)."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def kill(self) -> None:
        """SIGKILL dockerd (a host that dies outright). Its containerd exits with it; this process
        is made a child subreaper for the moment so that it can reap that orphan, and the pid files
        are removed so that ``start()`` can start the daemon again on the same data root."""
        containerd_pid = self.root / "exec" / "containerd" / "containerd.pid"
        cpid = int(containerd_pid.read_text().strip()) if containerd_pid.exists() else None
        _set_subreaper(True)
        try:
            if self.frozen:
                self.thaw()
            self.proc.kill()
            self.proc.wait(30)
            if cpid is not None:
                try:
                    os.kill(cpid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    os.waitpid(cpid, 0)
                except ChildProcessError:
                    pass  # not ours to reap (its parent reaped it)
        finally:
            _set_subreaper(False)
        for pid_file in (containerd_pid, self.root / "dockerd.pid"):
            pid_file.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop dockerd (and so its containers and its containerd), delete its bridge, undo mounts,
        remove files."""
        if self.proc is not None:
            if self.frozen:
                self.thaw()
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        containerd_pid = self.root / "exec" / "containerd" / "containerd.pid"
        if containerd_pid.exists():
            try:
                os.kill(int(containerd_pid.read_text().strip()), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass
        self._remove_bridge()
        _unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def _set_subreaper(on: bool) -> None:
    import ctypes

    pr_set_child_subreaper = 36
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1 if on else 0, 0, 0, 0)


def _unmount_under(root: Path) -> None:
    prefix = str(root.resolve())
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _storage_driver(probe_root: Path) -> str:
    """overlay2 if a throwaway dockerd starts with it here, else vfs."""
    return "overlay2" if _overlay_works(probe_root) else "vfs"


def _overlay_works(root: Path) -> bool:
    lower, upper, work, merged = (root / d for d in ("l", "u", "w", "m"))
    for d in (lower, upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    ok = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], capture_output=True
    )
    if ok.returncode == 0:
        subprocess.run(["umount", str(merged)], check=False)
    shutil.rmtree(root, ignore_errors=True)
    return ok.returncode == 0


class WorkerDaemons:
    """The session's extra engines, their certificates and helpers to build config."""

    def __init__(self, daemons: list[Daemon], certs: dict):
        self.daemons = daemons
        self.certs = certs

    def __iter__(self):
        return iter(self.daemons)

    def __getitem__(self, i) -> Daemon:
        return self.daemons[i]

    def specs(self, slots: int = 2, tls: bool = True) -> list[dict]:
        return [d.spec(slots, tls) for d in self.daemons]

    def labelled_containers(self, owner_pid: int | None = None, pooled: bool = True):
        """Braindrill containers on every daemon: {daemon name: [short ids]}; only those of the
        server process ``owner_pid`` when given; without idle warm-pool ones if not ``pooled``."""
        found = {}
        for d in self.daemons:
            client = d.client()
            try:
                # The low-level list: no inspect per container, so no race with removals.
                containers = client.api.containers(all=True, filters={"label": "braindrill.owner"})
            finally:
                client.close()
            found[d.name] = [
                c["Id"][:12]
                for c in containers
                if (owner_pid is None or f":{owner_pid}:" in c["Labels"]["braindrill.owner"])
                and (pooled or "braindrill.pooled" not in c["Labels"])
            ]
        return found


def _can_run_daemons() -> str | None:
    if os.geteuid() != 0:
        return "extra dockerd instances need root"
    if not os.path.exists(DOCKERD):
        return "dockerd is not installed"
    if not os.path.exists(IP):
        return "ip (iproute2) is not installed"
    for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        with socket.socket() as s:
            if s.connect_ex((ip, TLS_PORT)) == 0:
                return f"{ip}:{TLS_PORT} is already in use"
    return None


@pytest.fixture(scope="session")
def worker_daemons():
    """Three extra Docker Engines for the session (see the module docstring), started by the
    first test that needs them and stopped at the end of the session; without root, dockerd or
    iproute2 the tests that need them skip locally and fail under CI=true."""
    problem = _can_run_daemons()
    require(problem and f"the worker-host tests' extra Docker Engines: {problem}")
    daemons, stop = start_daemons()
    try:
        yield daemons
    finally:
        stop()


def start_daemons():
    """Start the engines. Returns them and ``stop()``, which stops them, removes what they left,
    and then raises AssertionError if the host's networking is not as it was before the start."""
    remove_stale_bridges()
    networking, docker0 = host_networking(), docker0_exists()
    base = Path(tempfile.mkdtemp(prefix="bd-hosts-"))
    ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    certs = make_certificates(base / "certs", ips)
    certs["server_cert"] = str(base / "certs" / "server-cert.pem")
    certs["server_key"] = str(base / "certs" / "server-key.pem")
    storage = _storage_driver(base / "probe")
    subnets = free_subnets(len(ips))
    daemons = []

    def stop():
        try:
            for daemon in daemons:
                daemon.stop()
        finally:
            for daemon in daemons:
                daemon._remove_bridge()  # done by stop() already, unless it failed before
            _unmount_under(base)
            shutil.rmtree(base, ignore_errors=True)
        check_networking_unchanged(networking, docker0)

    try:
        for i, (ip, subnet) in enumerate(zip(ips, subnets, strict=True), 1):
            root = base / f"w{i}"
            root.mkdir()
            daemon = Daemon(f"w{i}", root, ip, certs, storage, subnet)
            daemons.append(daemon)
            daemon.start()
    except BaseException:
        stop()
        raise
    return WorkerDaemons(daemons, certs), stop
