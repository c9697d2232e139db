"""Shared pieces of the Braindrill benchmarks: statistics, tables, a real Jupyter server, baselines,
the original engine's simulator mix, and the extra worker-host engines of the tests
(``start_daemons``, from ``tests/hosts.py``: the one place benchmarks get it from).

Benchmarks are scripts, not tests (STYLE.md §13): they measure this project and its baselines side
by side in one run and print tables; nothing here asserts a time. Import it from a script in this
folder (``from common import JupyterServer, ...``); ``python benchmarks/<script>.py`` puts the
folder on ``sys.path``.
"""

from __future__ import annotations

import collections
import json
import math
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

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout: tests.hosts

from braindrill_ext.engine.limits import LimitsPolicy
from braindrill_ext.execution import Limits
from braindrill_ext.hosts.images import resolve_image
from braindrill_ext.languages import LanguageRegistry
from braindrill_ext.sandbox.isolation import SANDBOX_USER
from braindrill_ext.sandbox.protocol import LABEL
from tests.hosts import start_daemons as start_daemons  # re-exported for the benchmarks

# -- statistics and tables -----------------------------------------------------------------------
PERCENTILES = (50, 90, 99)
LOG_NOISE = re.compile(r"[0-9a-f]{12,}|\d+(\.\d+)?")


def percentile(samples, p: float) -> float:
    """The ``p``-th percentile of ``samples`` (linear interpolation between closest ranks, as
    numpy's default); NaN when there are none."""
    data = sorted(samples)
    if not data:
        return math.nan
    k = (len(data) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summarize(samples) -> dict:
    """Count, mean, p50/p90/p99 and max of ``samples`` (NaN when empty)."""
    data = list(samples)
    stats = {"n": len(data), "mean": sum(data) / len(data) if data else math.nan}
    stats.update({f"p{p}": percentile(data, p) for p in PERCENTILES})
    stats["max"] = max(data) if data else math.nan
    return stats


def fmt(value, digits: int = 1) -> str:
    """A table cell: numbers rounded, NaN and None as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_table(title: str, headers: list[str], rows: list[list], note: str = "") -> None:
    """Print a Markdown table (readable as is, pasteable into a closing note)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    print(f"\n### {title}\n")
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print(line(row))
    if note:
        print(f"\n{note}")
    print(flush=True)


def machine_summary() -> str:
    """One line about the machine: CPUs, load average, Docker Engine version."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        client = docker.from_env(timeout=10)
        engine = client.version().get("Version", "?")
        client.close()
    except docker.errors.DockerException as e:
        engine = f"unavailable ({e})"
    return (
        f"{os.cpu_count()} CPUs, load average {load}, Docker Engine {engine}, "
        f"Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    )


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


def leftover_containers(owner_pid: int | None = None) -> list[str]:
    """Containers labelled ``braindrill.owner`` that exist now (any state), as ``id status owner``
    lines; only those of the server with pid ``owner_pid`` when given."""
    client = docker.from_env(timeout=30)
    try:
        found = client.containers.list(all=True, filters={"label": f"{LABEL}.owner"})
    finally:
        client.close()
    lines = []
    for c in found:
        owner = c.labels.get(f"{LABEL}.owner", "")
        if owner_pid is None or f":{owner_pid}:" in owner:
            lines.append(f"{c.short_id} {c.status} {owner}")
    return lines


# -- baselines -----------------------------------------------------------------------------------
def language_image(language: str = "python") -> str:
    """The image the server runs ``language`` with on the local engine (``resolve_image``)."""
    lang = LanguageRegistry.from_kernelspecs().get(language)
    client = docker.from_env(timeout=30)
    try:
        image = resolve_image(client, lang)
    finally:
        client.close()
    if image is None:
        raise RuntimeError(f"no image for {language}: run `braindrill-images prepare {language}`")
    return image


def docker_run_argv(image: str, run: list[str], limits: Limits | None = None) -> list[str]:
    """``docker run --rm -i`` of one execution, the original engine's way (one container per run,
    through the CLI), with the Braindrill sandbox's flags as far as the CLI has them. The code goes
    to ``run`` on stdin; the label lets a crashed benchmark's containers be found."""
    lim = limits or LimitsPolicy().defaults(LanguageRegistry.from_kernelspecs().get("python"))
    fsize = lim.workdir_mib << 20
    return [
        *("docker", "run", "--rm", "-i", "--init", "--label", "braindrill-bench=docker-run"),
        *("--network", "none", "--read-only", "--user", SANDBOX_USER, "--cap-drop", "ALL"),
        *("--security-opt", "no-new-privileges", "--pids-limit", str(lim.pids)),
        *("-m", f"{lim.memory_mib}m", "--memory-swap", f"{lim.memory_mib}m"),
        *("--cpus", f"{lim.cpus:g}", "--log-driver", "none"),
        *("--ulimit", f"nofile={lim.nofile}:{lim.nofile}", "--ulimit", f"fsize={fsize}:{fsize}"),
        *("--ulimit", "core=0:0"),
        "--tmpfs",
        f"/work:rw,exec,nosuid,nodev,size={lim.workdir_mib}m,uid=65534,gid=65534,mode=0700",
        *("--tmpfs", f"/tmp:rw,nosuid,nodev,size={lim.workdir_mib}m,mode=1777"),
        *("-w", "/work", "-e", "HOME=/work", "-e", "TMPDIR=/tmp", "-e", "LANG=C.UTF-8"),
        image,
        *("timeout", "-s", "KILL", f"{lim.timeout_s:g}"),
        *run,
    ]


# -- the original engine's simulator mix ---------------------------------------------------------
# Five Python snippets after the original engine's simulator (Ghurtchu/braindrill, Simulator.scala),
# made heavier where the original's were trivial, so that each exercises what its name says.
SIMULATOR_MIX = {
    "memory": (
        "data = bytearray(50 << 20)  # allocate 50 MiB\n"
        "data[::4096] = b'\\x01' * (len(data) // 4096)  # touch every page\n"
        "print(sum(data[::4096]), 'pages touched')\n"
    ),
    "cpu": (
        "def cpu_intensive_task(n):\n"
        "    result = 0\n"
        "    for i in range(n):\n"
        "        result += i * i\n"
        "    return result\n"
        "print(cpu_intensive_task(5_000_000))  # about 0.3 s of CPU\n"
    ),
    "random_loop": (
        "import random\n"
        "n = 0\n"
        "while random.randint(1, 1000) != 1000:  # 1000 iterations on average\n"
        "    n += 1\n"
        "    print(f'Generated number: {n}')\n"
        "print('done after', n)\n"
    ),
    "prints_500": "for i in range(500):\n    print('number: ' + str(i))\n",
    "hello": "print('hello world')\n",
}

# The original snippets verbatim: "memory" prints a list of 2M zeros (about 6 MB of output: here an
# output_limit), "cpu" sums 50 squares, "simple" prints 99 lines.
ORIGINAL_MIX = {
    "memory": (
        "def memory_intensive_task(size_mb):\n"
        "    data = [0] * (size_mb * 1024 * 1024)\n"
        "    return data\n"
        "print(memory_intensive_task(2))\n"
    ),
    "cpu": (
        "def cpu_intensive_task(n):\n"
        "    result = 0\n"
        "    for i in range(n):\n"
        "        result += i * i\n"
        "    return result\n"
        "print(cpu_intensive_task(50))\n"
    ),
    "random_loop": (
        "import random\n"
        "stop = False\n"
        "while not stop:\n"
        "    random_number = random.randint(1, 1000)\n"
        "    print(f'Generated number: {random_number}')\n"
        "    if random_number == 1000:\n"
        "        stop = True\n"
        "print('Found a number greater than 80. Exiting loop.')\n"
    ),
    "simple": "for i in range(1, 100):\n    print('number: ' + str(i))\n",
    "hello": "print('hello world')",
}

MIXES = {"heavy": SIMULATOR_MIX, "original": ORIGINAL_MIX}
SIMULATOR_INTERVAL_S = 0.160  # the original simulator sent one request every 160 ms
