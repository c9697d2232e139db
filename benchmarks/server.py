"""A real Jupyter server for the Braindrill benchmarks: ``JupyterServer`` (a ``jupyter server``
subprocess with ``braindrill_ext`` enabled and a traitlets config, on a free 127.0.0.1 port, with a
random token, its log kept and summarized) and the traitlets config dicts it takes (``parse_config``
reads them from the command line, ``merge_config`` merges two).

Import it from a script in this folder (``from server import JupyterServer, ...``);
``python benchmarks/<script>.py`` puts the folder on ``sys.path``.
"""

from __future__ import annotations

import collections
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


# -- server configuration ------------------------------------------------------------------------
def merge_config(base: dict, extra: dict) -> dict:
    """Deep-merge two traitlets config dicts (``extra`` wins); returns a new dict."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_config(items) -> dict:
    """Turn ``Class.trait=value`` strings and JSON config files into one traitlets config dict.

    A value is read as JSON when it parses (``4``, ``true``, ``{"python": 2}``), else as a string:
    ``ExecutionEngine.slots=4`` → ``{"ExecutionEngine": {"slots": 4}}``.
    """
    config: dict = {}
    for item in items:
        if "=" not in item:
            with open(item) as f:
                config = merge_config(config, json.load(f))
            continue
        key, _, raw = item.partition("=")
        section, dot, trait = key.strip().rpartition(".")
        if not dot or not section or not trait:
            raise ValueError(f"{item!r}: expected Class.trait=value or a JSON file")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        config = merge_config(config, {section: {trait: value}})
    return config


# -- a real Jupyter server -----------------------------------------------------------------------
LOG_NOISE = re.compile(r"[0-9a-f]{12,}|\d+(\.\d+)?")  # masked in log_summary: ids, numbers


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """A real ``jupyter server`` subprocess on a free 127.0.0.1 port, with a random token and the
    given traitlets ``config`` (merged over one that enables ``braindrill_ext``).

    Use as a context manager, or call ``start()`` and ``stop()``. Its output goes to ``log_path``,
    kept after the run; ``log_lines()`` returns its warnings and errors. ``pid`` identifies the
    containers it owns (their ``braindrill.owner`` label holds it).
    """

    def __init__(
        self, config: dict | None = None, name: str = "server", log_dir: str = "", env=None
    ):
        self.name = name
        self.env = env or {}  # more environment for the server (PYTHONPATH: another checkout)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(log_dir or tempfile.mkdtemp(prefix="braindrill-bench-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        slug = "".join(c if c.isalnum() else "-" for c in name)
        self.log_path = self.dir / f"{slug}-{self.port}.log"
        self.config = merge_config(
            {
                "ServerApp": {
                    "ip": "127.0.0.1",
                    "port": self.port,
                    "port_retries": 0,
                    "open_browser": False,
                    "allow_root": True,  # containers and CI machines often run as root
                    "root_dir": str(self.dir),
                    "jpserver_extensions": {"braindrill_ext": True},
                },
                "IdentityProvider": {"token": self.token},
            },
            config or {},
        )
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def headers(self) -> dict:
        return {"Authorization": f"token {self.token}"}

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout_s: float = 90.0) -> JupyterServer:
        """Start the server; wait until it answers an authenticated ``GET /braindrill/workers``."""
        config_path = self.dir / f"config-{self.port}.json"
        config_path.write_text(json.dumps(self.config, indent=1))
        env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(self.dir / "runtime"),
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        self._log = open(self.log_path, "w")  # closed in stop()
        argv = [sys.executable, "-m", "jupyter_server", f"--config={config_path}"]
        self.proc = subprocess.Popen(
            argv,
            cwd=self.dir,  # not the checkout: `-m` puts the cwd first on sys.path
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name}: jupyter server exited with {self.proc.returncode}:\n"
                    + "\n".join(self.log_tail(30))
                )
            try:
                self.get("/braindrill/workers")
                return self
            except urllib.error.HTTPError as e:  # it answers, but Braindrill is not there
                self.stop()
                raise RuntimeError(
                    f"{self.name}: Braindrill answered {e.code}; the server's warnings:\n"
                    + "\n".join(self.log_lines()[:30])
                ) from None
            except OSError:  # not listening yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.name}: no answer within {timeout_s:g} s") from None
                time.sleep(0.25)

    def get(self, path: str, timeout_s: float = 30.0) -> dict:
        """GET ``path`` with the token; returns the decoded JSON."""
        req = urllib.request.Request(self.url + path, headers=self.headers)
        with urllib.request.urlopen(req, timeout=timeout_s) as response:
            return json.loads(response.read())

    def execute(
        self, language: str, code: str, expected: str, timeout_s: float
    ) -> tuple[str | None, dict | None]:
        """``POST /lang/<language>`` with ``code`` as the body. Returns what went wrong (an HTTP
        error, a failed connection, a status other than ok or output other than ``expected``) or
        None, and the JSON result when it is good."""
        req = urllib.request.Request(
            f"{self.url}/lang/{language}",
            data=code.encode(),
            headers={**self.headers, "Content-Type": "text/plain; charset=utf-8"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as response:
                result = json.loads(response.read())
        except urllib.error.HTTPError as e:
            return f"HTTP {e.code}", None
        except OSError as e:
            return f"{type(e).__name__}: {e}", None
        if result["status"] != "ok" or result["stdout"] != expected:
            return f"status {result['status']}: {result.get('message')}", None
        return None, result

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """Stop the server with SIGTERM (its extensions shut down cleanly), SIGKILL if it hangs.
        Returns its exit code."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode if self.proc else None

    def log_tail(self, n: int = 20) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()[-n:]

    def log_lines(self, levels: str = "WEC") -> list[str]:
        """The server's log lines at the given levels (W, E, C), each with its traceback."""
        picked, keep = [], False
        for text in self.log_path.read_text(errors="replace").splitlines():
            if text.startswith("["):
                keep = len(text) > 2 and text[1] in levels and text[2] == " "
            if keep:
                picked.append(text)
        return picked

    def log_summary(self, levels: str = "WEC") -> list[tuple[int, str]]:
        """The server's warning and error lines grouped by message (timestamps, numbers and ids
        masked), most frequent first, as (count, first line seen)."""
        counts: collections.Counter = collections.Counter()
        first: dict = {}
        for text in self.log_lines(levels):
            if not text.startswith("["):
                continue  # traceback and header-dump lines: the log file has them
            key = LOG_NOISE.sub("#", text.split("]", 1)[-1])
            counts[key] += 1
            first.setdefault(key, text)
        return [(n, first[key]) for key, n in counts.most_common()]

    def __enter__(self) -> JupyterServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
