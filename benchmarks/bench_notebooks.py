"""Notebook cells and REST requests at the speed of a local process (issue 21), with the baselines
measured in the same run:

1. **Run All** of an ordinary and of a data notebook (10 cells each) with nbclient's cell
   execution, against a warm ipykernel and against Braindrill on the default kind (``auto``),
   on it with Docker's attach stream instead of the runners' channel (``attach``: the A/B of
   ``sandbox/channel.py``) and on ``container``: the wall time of a Run All of a warm kernel, and
   each cell's p50. Parts 2, 3 and 6 have the same three rows; the simulator has no ``attach``.
2. **A cell at a user's pace**: 1 s between cells, the kernel holding a few small variables;
   p50 of a cell (send → reply) for python and python-data, and ipykernel.
3. **REST back to back**: p50 of 20 ``print("hello")`` requests sent one after the other, after
   20 untimed ones let the warm pools grow (default sizes), on the default kind and on
   ``container``, against a bare ``python3 -c`` process per request on this machine.
4. **The original simulator** (``common.ORIGINAL_MIX``: one request every 160 ms, each answer
   timed from its scheduled send) for ``--duration`` s at 1x and 3x its rate, on both kinds;
   ``--before CHECKOUT`` adds the nested kind of an earlier checkout of this project (put first
   on the server's ``PYTHONPATH``) at both rates.
5. **Memory**: a runner's template (its resident set) and what one forked sandbox adds (the
   unique set size of its processes: shared pages are not counted twice), read from ``/proc``.
6. **State per MiB**: a python kernel carrying 1, 8 and 32 MiB of random bytes in a variable; a
   cell that changes the state, and one that leaves it as it came.

    python benchmarks/bench_notebooks.py                       # everything, ~15 min
    python benchmarks/bench_notebooks.py --parts rest,simulator --duration 30
    python benchmarks/bench_notebooks.py --before /tmp/braindrill-e2da636

Needs the project installed with its ``bench`` extras (ipykernel, pandas, matplotlib), the python
and python-data runtime images, and root (reading other processes' memory).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time

from common import (
    ORIGINAL_MIX,
    SIMULATOR_INTERVAL_S,
    docker_run_argv,
    language_image,
    machine_cpu_s,
    machine_summary,
    percentile,
    print_table,
)
from notebook_kernels import engine_config, run_worker
from openloop import LoadRun, load_run
from runner_memory import runner_memory
from server import JupyterServer

KINDS = ("auto", "attach", "container")


def notebooks() -> None:
    figures = {kind: run_worker(kind, "notebooks") for kind in ("ipykernel", *KINDS)}
    base = {nb: statistics.median(figures["ipykernel"][nb]["wall"]) for nb in ("ordinary", "data")}
    rows = []
    for kind, result in figures.items():
        for nb in ("ordinary", "data"):
            r = result[nb]
            wall = statistics.median(r["wall"])
            rows.append([
                label(kind), nb, wall * 1000, f"{wall / base[nb]:.2f}",
                percentile(r["cells"], 50), percentile(r["cells"], 90), r["failed"],
            ])  # fmt: skip
    print_table(
        "nbclient's Run All of a warm kernel (10 cells), median of 3, after 2 untimed",
        ["kernel", "notebook", "wall ms", "x ipykernel", "cell p50 ms", "cell p90 ms", "failed"],
        rows,
        "Goal: within 1.5x of ipykernel for both notebooks.",
    )


def pace() -> None:
    figures = {kind: run_worker(kind, "pace") for kind in ("ipykernel", *KINDS)}
    base = {lang: percentile(figures["ipykernel"][lang], 50) for lang in ("python", "python-data")}
    rows = []
    for kind, result in figures.items():
        for lang in ("python", "python-data"):
            p50 = percentile(result[lang], 50)
            rows.append([label(kind), lang, p50, p50 - base[lang], percentile(result[lang], 90)])
    print_table(
        "A cell at a user's pace (1 s between cells, a few small variables), 15 cells",
        ["kernel", "language", "p50 ms", "over ipykernel ms", "p90 ms"],
        rows,
        "Goal: within ipykernel + 15 ms.",
    )


def state() -> None:
    rows = []
    for kind in KINDS:
        result = run_worker(kind, "state")
        for mib, r in result.items():
            rows.append([
                label(kind), int(mib), percentile(r["changed"], 50), percentile(r["same"], 50)
            ])  # fmt: skip
    for kind in KINDS:
        mine = [r for r in rows if r[0] == label(kind)]
        slope = (mine[-1][2] - mine[0][2]) / (mine[-1][1] - mine[0][1])
        same = (mine[-1][3] - mine[0][3]) / (mine[-1][1] - mine[0][1])
        rows.append([label(kind), "per MiB", slope, same])
    print_table(
        "State carried by a python kernel: a variable of random bytes (p50 ms of 5 cells)",
        ["kernel", "state MiB", "cell that changes it", "cell that leaves it as it came"],
        rows,
        "The state goes to every cell's sandbox; it comes back only when it changed.",
    )


# -- REST -----------------------------------------------------------------------------------------
def server(kind: str, before: str = "") -> JupyterServer:
    config = {
        "ExecutionEngine": {**engine_config(kind), "queue_size": 1000, "queue_timeout_s": 120},
    }
    env = {"PYTHONPATH": before} if before else {}
    return JupyterServer(config, name=f"{kind}{' before' if before else ''}", env=env)


def rest() -> None:
    code = 'print("hello")'
    bare = []
    for _ in range(25):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, check=True)
        bare.append((time.perf_counter() - started) * 1000)
    bare_p50 = percentile(bare[5:], 50)
    rows = [["a bare python3 -I -c per request", bare_p50, 0.0, percentile(bare[5:], 90), "-"]]
    for kind in KINDS:
        with server(kind) as srv:
            for _ in range(20):
                srv.execute("python", code, "hello\n", 120)
            time.sleep(5)
            samples, bad = [], 0
            for _ in range(20):
                started = time.perf_counter()
                problem, _ = srv.execute("python", code, "hello\n", 120)
                samples.append((time.perf_counter() - started) * 1000)
                bad += problem is not None
        p50 = percentile(samples, 50)
        rows.append([label(kind), p50, p50 - bare_p50, percentile(samples, 90), bad])
    print_table(
        'REST print("hello") back to back, 20 requests after 20 untimed (default pool sizes)',
        ["server", "p50 ms", "over bare ms", "p90 ms", "failed"],
        rows,
        "Goals: within +10 ms of a bare process on the default kind, +40 ms on container.",
    )


def simulator(duration_s: float, before: str) -> None:
    kinds = [kind for kind in KINDS if kind != "attach"]  # long rows: the attach stream's A/B
    runs = [(kind, "") for kind in kinds] + ([("nested", before)] if before else [])  # is above
    rows = []
    for kind, checkout in runs:
        for mult in (1, 3):
            with server(kind, checkout) as srv:
                rate = mult / SIMULATOR_INTERVAL_S
                name = label(kind) + (" (before)" if checkout else "")
                # untimed: the same load for 10 s, so that the pools have grown (steady state)
                asyncio.run(load_run(srv, LoadRun("warm-up", rate), ORIGINAL_MIX, 10, seed=7))
                run = asyncio.run(
                    load_run(srv, LoadRun(name, rate), ORIGINAL_MIX, duration_s, seed=mult)
                )
            lat = run.latencies
            statuses = ", ".join(f"{k} {v}" for k, v in sorted(run.outcomes.items()))
            rows.append([
                name, f"{mult}x", run.sent, percentile(lat, 50), percentile(lat, 99), statuses,
            ])  # fmt: skip
    life_s = container_life_cpu_s()
    print_table(
        f"The original simulator mix, open loop, {duration_s:g} s per row after 10 s of the same "
        "load untimed (ms from the send)",
        ["server", "rate", "sent", "p50", "p99", "outcomes"],
        rows,
        "Goals: p99 under 150 ms on the default kind and 300 ms on container at 1x; at 3x the "
        "default kind no worse than the nested kind before (--before).\n\n"
        f"A container's life alone (a bare `docker run --rm` with the sandbox's flags) costs "
        f"{life_s * 1000:.0f} ms of this machine's CPU: the container kind at 1x needs "
        f"{life_s / SIMULATOR_INTERVAL_S:.2f} of its {os.cpu_count()} CPUs for that alone.",
    )


def container_life_cpu_s(runs: int = 10) -> float:
    """The machine's CPU (the CLI, dockerd, containerd, runc, the shim, the kernel) per bare
    ``docker run --rm`` of ``true``, the median of ``runs``."""
    argv = docker_run_argv(language_image("python"), ["true"])
    costs = []
    for _ in range(runs):
        started = machine_cpu_s()
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=True)
        costs.append(machine_cpu_s() - started)
    return statistics.median(costs)


# -- memory ---------------------------------------------------------------------------------------
def memory() -> None:
    """A runner's processes during a cell that sleeps: the template's RSS and PSS, and the unique
    set size (private pages) of the sandbox's processes."""
    rows = []
    with server("nested") as srv:
        for language, code in (
            ("python", "import time; time.sleep(4)"),
            ("python-data", "import pandas, time; time.sleep(4)"),
        ):
            srv.execute(language, "1", "", 120)  # a runner, and its template, are ready
            thread = threading.Thread(target=srv.execute, args=(language, code, "", 120))
            thread.start()
            time.sleep(2)
            rows.append([language, *runner_memory(language)])
            thread.join()
    print_table(
        "Memory of a slot runner (MiB): the template, shared copy-on-write by every sandbox, and "
        "what a sandbox adds",
        ["language", "template RSS", "template PSS", "relay RSS", "sandbox USS (all processes)"],
        rows,
        "USS: the sandbox's private pages (those it wrote), counted once; the template's pages "
        "it only reads are shared. All of it is in the runner's cgroup; the runner's own charge "
        "when ready is added to each execution's memory limit.",
    )


def label(kind: str) -> str:
    return {"ipykernel": "ipykernel", "auto": "Braindrill (default: auto → nested here)",
            "attach": "Braindrill default, attach stream (no channel)",
            "container": "Braindrill container", "nested": "Braindrill nested"}[kind]  # fmt: skip


PARTS = ("notebooks", "pace", "rest", "simulator", "memory", "state")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="of " + ", ".join(PARTS))
    parser.add_argument("--duration", type=float, default=30.0, help="s per simulator row")
    parser.add_argument("--before", default="", help="a checkout of an earlier commit")
    args = parser.parse_args(argv)
    print(machine_summary())
    parts = args.parts.split(",")
    for part in parts:
        if part not in PARTS:
            parser.error(f"unknown part {part!r}")
    if "notebooks" in parts:
        notebooks()
    if "pace" in parts:
        pace()
    if "rest" in parts:
        rest()
    if "simulator" in parts:
        simulator(args.duration, args.before)
    if "memory" in parts:
        memory()
    if "state" in parts:
        state()
    return 0


if __name__ == "__main__":
    sys.exit(main())
