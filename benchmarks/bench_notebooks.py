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
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import (
    ORIGINAL_MIX,
    SIMULATOR_INTERVAL_S,
    JupyterServer,
    language_image,
    machine_summary,
    percentile,
    print_table,
)
from openloop import LoadRun, load_run

ORDINARY = [
    "x = 6 * 7\nx",
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"
    "fib(30)",
    "class Box:\n    def __init__(self, width, height):\n        self.width = width\n"
    "        self.height = height\n\n    def area(self):\n        return self.width * self.height\n"
    "\nbox = Box(3, 4)\nbox.area()",
    "squares = [i * i for i in range(1000)]\nsum(squares)",
    "with open('notes.txt', 'w') as f:\n    f.write('hello\\n' * 10)",
    "open('notes.txt').read().count('hello')",
    "from collections import Counter\n"
    "words = 'the quick brown fox jumps over the lazy dog the end'.split()\n"
    "Counter(words).most_common(3)",
    "import math\n[round(math.sin(i / 10), 3) for i in range(5)]",
    "text = ' '.join(words) * 3\nlen(text)",
    "print(f'{box.area()} {fib(10)} {x}')",
]
DATA = [
    "import numpy as np\nimport pandas as pd\nrng = np.random.default_rng(0)\n"
    "df = pd.DataFrame({'a': rng.normal(size=100_000), 'b': rng.integers(0, 10, 100_000)})\n"
    "df.shape",
    "df.describe()",
    "df.groupby('b')['a'].agg(['mean', 'std', 'count'])",
    "import matplotlib.pyplot as plt\nplt.hist(df['a'], bins=50)\nplt.show()",
    "df.to_csv('data.csv', index=False)",
    "df2 = pd.read_csv('data.csv')\nlen(df2)",
    "m = rng.normal(size=(300, 300))\n(m @ m.T).trace()",
    "df['c'] = df['a'] * 2 + df['b']\ndf['c'].mean()",
    "df[df['b'] > 5].head()",
    "df.groupby('b').size().to_dict()",
]
PACE = ["x = 1\ns = 'some text'\nitems = list(range(10))"] + ["x += 1"] * 20
KINDS = ("auto", "attach", "container")
# "attach": the default kind with the local host's channel off (its runners keep Docker's attach
# stream, as before the channel): what the channel saves, in the same run.
ATTACH_HOSTS = [{"name": "local", "channel": False}]
TIMEOUT = 300


# -- kernels, in a process of their own per engine configuration -------------------------------
def worker(kind: str, part: str, config_dir: str) -> dict:
    """Run in a subprocess (``--worker``): ``part`` with kernels of the embedded engine of kind
    ``kind`` (``ipykernel``: the baseline). Returns the figures as JSON."""
    from jupyter_client import KernelManager

    def kernel(name):
        km = KernelManager(kernel_name=name)
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=TIMEOUT)
        return km, kc

    def cell(kc, code):
        started = time.perf_counter()
        reply = kc.execute_interactive(code, timeout=TIMEOUT, output_hook=lambda msg: None)
        ms = (time.perf_counter() - started) * 1000
        return ms, reply["content"]["status"]

    def name(language):
        return "python3" if kind == "ipykernel" else f"braindrill-{language}"

    out: dict = {}
    if part == "notebooks":
        import nbformat
        from nbclient import NotebookClient

        notebooks = (("ordinary", ORDINARY, "python"), ("data", DATA, "python-data"))
        for nb_name, cells, language in notebooks:
            km = KernelManager(kernel_name=name(language))
            km.start_kernel()
            try:
                walls, per_cell, failed = [], [], 0
                for run in range(5):  # 2 untimed: imports, warm pools growing
                    nb = nbformat.v4.new_notebook()
                    nb.cells = [nbformat.v4.new_code_cell(code) for code in cells]
                    client = NotebookClient(nb, km=km, timeout=TIMEOUT, allow_errors=True)
                    started = time.perf_counter()
                    client.execute()  # Run All on the warm kernel
                    wall = time.perf_counter() - started
                    if run >= 2:
                        walls.append(wall)
                        per_cell += [cell_ms(c) for c in nb.cells]
                        failed += sum(
                            o.get("output_type") == "error" for c in nb.cells for o in c.outputs
                        )
                    time.sleep(3)
                out[nb_name] = {"wall": walls, "cells": per_cell, "failed": failed}
            finally:
                km.shutdown_kernel(now=True)
    elif part == "pace":
        for language in ("python", "python-data"):
            km, kc = kernel(name(language))
            try:
                samples = []
                for i, code in enumerate(PACE):
                    ms, status = cell(kc, code)
                    if i >= 5 and status == "ok":  # after the kernel settled
                        samples.append(ms)
                    time.sleep(1)
                out[language] = samples
            finally:
                kc.stop_channels()
                km.shutdown_kernel(now=True)
    elif part == "state":
        km, kc = kernel(name("python"))
        try:
            cell(kc, "import os\ncount = 0")
            for mib in (1, 8, 32):
                cell(kc, f"blob = os.urandom({mib} << 20)")
                changed, same = [], []
                for _ in range(6):
                    changed.append(cell(kc, "count += 1")[0])
                    time.sleep(0.5)
                    same.append(cell(kc, "len(blob)")[0])
                    time.sleep(0.5)
                out[str(mib)] = {"changed": changed[1:], "same": same[1:]}
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    return out


def cell_ms(cell) -> float:
    """A cell's time as nbclient records it: its execute_input to its execute_reply."""
    import datetime

    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return float("nan")
    parse = datetime.datetime.fromisoformat
    return (
        parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))
    ).total_seconds() * 1000


def run_worker(kind: str, part: str) -> dict:
    """``worker`` in a subprocess whose embedded engine has kind ``kind``."""
    with tempfile.TemporaryDirectory(prefix="bench-notebooks-") as config_dir:
        config = {"ExecutionEngine": engine_config(kind), "StateStore": {"budget_mib": 2048}}
        Path(config_dir, "jupyter_server_config.json").write_text(json.dumps(config))
        env = {**os.environ, "JUPYTER_CONFIG_DIR": config_dir}
        argv = [sys.executable, __file__, "--worker", kind, part, config_dir]
        # cwd: the notebooks write files (ipykernel where it runs), never into the checkout
        done = subprocess.run(
            argv, env=env, cwd=config_dir, capture_output=True, text=True, timeout=3600
        )
        if done.returncode != 0:
            raise RuntimeError(f"{kind} {part} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


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
    print_table(
        f"The original simulator mix, open loop, {duration_s:g} s per row after 10 s of the same "
        "load untimed (ms from the send)",
        ["server", "rate", "sent", "p50", "p99", "outcomes"],
        rows,
        "Goals: p99 under 150 ms on the default kind and 300 ms on container at 1x; at 3x the "
        "default kind no worse than the nested kind before (--before).",
    )


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


def runner_memory(language: str) -> list:
    """The memory figures of the runner of ``language`` running the cell."""
    import docker

    image = language_image(language)
    client = docker.from_env(timeout=30)
    try:
        found = [
            c for c in client.containers.list(filters={"label": ["braindrill.pooled=1"]})
            if c.attrs["Config"]["Image"] == image
        ]  # fmt: skip
        tops = []
        for c in found:  # a runner the pool removes meanwhile (one too many) is gone
            try:
                tops.append(client.api.top(c.id, ps_args="-o pid,ppid,args")["Processes"])
            except docker.errors.NotFound:
                continue
    finally:
        client.close()
    figures = []
    for top in tops:  # the runner running the cell: its sandbox has the most private pages
        try:
            figures.append(runner_figures(top))
        except (OSError, StopIteration, ValueError):
            continue  # a runner going away meanwhile
    return max(figures, key=lambda row: row[-1])


def runner_figures(top) -> list:
    """Template RSS and PSS, relay RSS and the sandbox's USS of one runner (``docker top``)."""
    procs = {int(p): (int(pp), args) for p, pp, args in top}
    relay = next(p for p, (pp, args) in procs.items() if "python3" in args and
                 procs.get(pp, (0, ""))[1].startswith("timeout"))  # fmt: skip
    template = min(p for p, (pp, _) in procs.items() if pp == relay)
    sandbox = [p for p in procs if p not in (relay, template) and descends(p, relay, procs)]
    t = smaps(template)
    return [t["Rss"], t["Pss"], smaps(relay)["Rss"], sum(uss(p) for p in sandbox)]


def descends(pid: int, ancestor: int, procs: dict) -> bool:
    while pid in procs:
        pid = procs[pid][0]
        if pid == ancestor:
            return True
    return False


def smaps(pid: int) -> dict:
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "kB":
                values[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return values


def uss(pid: int) -> float:
    values = smaps(pid)
    return values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)


def label(kind: str) -> str:
    return {"ipykernel": "ipykernel", "auto": "Braindrill (default: auto → nested here)",
            "attach": "Braindrill default, attach stream (no channel)",
            "container": "Braindrill container", "nested": "Braindrill nested"}[kind]  # fmt: skip


def engine_config(kind: str) -> dict:
    if kind == "attach":
        return {"sandbox": "auto", "hosts": ATTACH_HOSTS}
    return {"sandbox": kind}


PARTS = ("notebooks", "pace", "rest", "simulator", "memory", "state")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="of " + ", ".join(PARTS))
    parser.add_argument("--duration", type=float, default=30.0, help="s per simulator row")
    parser.add_argument("--before", default="", help="a checkout of an earlier commit")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return 0
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
