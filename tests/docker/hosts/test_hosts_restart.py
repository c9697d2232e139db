"""A Jupyter server killed with SIGKILL mid-execution, then started again, leaves no labelled
container on any worker host: the new server's reaper removes what the dead one left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from tests.helpers import eventually_sync, free_port

TOKEN = "restart-test-token"


def _request(port, path, body=None, timeout=10):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/{path}",
        data=body.encode() if body is not None else None,
        headers={"Authorization": f"token {TOKEN}"},
        method="POST" if body is not None else "GET",
    )
    with urllib.request.urlopen(req, timeout=timeout) as response:
        return json.loads(response.read())


class Server:
    """``jupyter server`` in a subprocess, configured with the worker hosts."""

    def __init__(self, tmp_path, hosts):
        self.port = free_port()
        config = tmp_path / "jupyter_server_config.json"
        config.write_text(
            json.dumps(
                {
                    "ServerApp": {"jpserver_extensions": {"braindrill_ext": True}},
                    "IdentityProvider": {"token": TOKEN},
                    "ExecutionEngine": {"hosts": hosts, "health_interval_s": 1},
                }
            )
        )
        self.log = open(tmp_path / f"server-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                f"--config={config}",
                f"--port={self.port}",
                "--ip=127.0.0.1",
                "--no-browser",
                "--allow-root",
                f"--ServerApp.root_dir={tmp_path}",
            ],
            stdout=self.log,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
        )

        def up() -> bool:
            assert self.proc.poll() is None, "jupyter server exited at start-up"
            try:
                _request(self.port, "braindrill/workers", timeout=5)
            except (OSError, urllib.error.URLError):
                return False
            return True

        assert eventually_sync(up, 90, every_s=0.5), "jupyter server did not start in 90 s"

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        self.proc.wait(60)
        self.log.close()


def test_sigkilled_server_leaves_no_container(tmp_path, worker_daemons):
    hosts = worker_daemons.specs(slots=1)
    first = Server(tmp_path, hosts)
    try:
        answers = []

        def long_run():
            body = "import time; print('started', flush=True); time.sleep(60)"
            try:
                answers.append(_request(first.port, "lang/python", body, timeout=120))
            except (OSError, urllib.error.URLError) as e:
                answers.append(e)

        threads = [threading.Thread(target=long_run) for _ in range(3)]
        for t in threads:
            t.start()

        def running_everywhere():  # whatever the sandbox kind: a container, or a slot runner
            workers = _request(first.port, "braindrill/workers")["workers"]
            made = worker_daemons.labelled_containers(first.proc.pid)
            return all(w["running"] == 1 for w in workers) and all(made.values())

        # One long execution on each host (one slot each), then the server dies.
        assert eventually_sync(running_everywhere, 120), "an execution running on every host"
        time.sleep(1)
    finally:
        first.kill()
    for t in threads:
        t.join(30)
    assert all(isinstance(a, Exception) for a in answers), answers  # no answer from the dead
    # Left behind by the crash: the executions' containers (and any warm-pool ones).
    orphans = worker_daemons.labelled_containers(first.proc.pid)
    assert all(orphans.values()), orphans

    second = Server(tmp_path, hosts)
    try:
        assert eventually_sync(
            lambda: not any(worker_daemons.labelled_containers(first.proc.pid).values()), 30
        ), "the restarted server reaped every container the killed one left"
        # And it works.
        result = _request(second.port, "lang/python", "print('after restart')", timeout=120)
        assert result["status"] == "ok" and result["stdout"] == "after restart\n"
    finally:
        second.kill(signal.SIGTERM)
    # A server stopped cleanly leaves nothing either (its warm containers included).
    assert eventually_sync(
        lambda: not any(worker_daemons.labelled_containers(second.proc.pid).values()), 30
    ), "the stopped server left nothing"
