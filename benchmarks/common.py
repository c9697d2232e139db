"""Shared pieces of the Braindrill benchmarks: statistics, tables, the machine's summary, the
containers a run left, baselines, the original engine's simulator mix, and the extra worker-host
engines of the tests (``start_daemons``, from ``tests/hosts.py``: the one place benchmarks get it
from). A real Jupyter server (``JupyterServer``) and its config dicts are in ``server.py``.

Benchmarks are scripts, not tests (STYLE.md §13): they measure this project and its baselines side
by side in one run and print tables; nothing here asserts a time. Import it from a script in this
folder (``from common import print_table, ...``); ``python benchmarks/<script>.py`` puts the
folder on ``sys.path``.
"""

from __future__ import annotations

import math
import os
import sys
import time
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


def machine_cpu_s() -> float:
    """The CPU time this machine has spent so far, all processes and the kernel (/proc/stat)."""
    with open("/proc/stat") as f:  # user nice system idle iowait irq softirq steal (guest: in user)
        ticks = [int(n) for n in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # but idle and iowait


# -- the containers a run left -------------------------------------------------------------------
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
