"""State that survives fresh containers (issue 13): the cost of carrying a kernel's state from
cell to cell, by the state's size, and a 10-cell data notebook end to end, Braindrill against a
warm ipykernel, side by side in one run.

```sh
python benchmarks/bench_state.py  # --sizes 0 1 10 50 --cells 10 --warmup 2 --runs 3
```

Every kernel is started from this process with jupyter_client, as a script or nbclient would.
Braindrill's kernels live in this process (its embedded engine, configured by a
``jupyter_server_config.json`` this script writes: warm pools for python and python-data, and a
work directory large enough for 50 MiB of state plus its pickle), so the size of the state the
engine keeps for a kernel is read from the engine itself (``StateStore.size`` of the kernel's
key), next to what the cell says about its own variable or file.

1. **Cell latency by state size.** Per kernel and size, a setup cell (``%reset -f``, then a
   variable ``blob = os.urandom(N)`` or a file of N random bytes: nothing compresses), then
   ``--warmup`` untimed and ``--cells`` timed trivial cells that carry it (``len(blob)``,
   ``os.path.getsize(...)``): from ``execute_request`` sent to ``execute_reply`` received. Rows
   for an empty state and for a ``%%stateless`` cell (no state sent or kept) frame them; the
   warm ipykernel, which keeps its variables in its process, is the baseline.
2. **A data notebook.** Ten cells a data scientist writes (imports, a 100,000-row DataFrame,
   derived columns, groupby, describe, a plot, numpy on a column, a filter, a merge, a printed
   summary), each using the earlier cells' variables, on ``braindrill-python-data`` and on
   ipykernel: one untimed pass, then ``--runs`` timed passes (``%reset -f`` before each, so the
   kernels stay warm but the variables start empty), the two kernels in turn. Every cell must
   succeed, the plot must come back as a PNG and the printed summary must be the same in both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time

from common import leftover_containers, machine_summary, percentile, print_table
from jupyter_client import KernelManager

from braindrill_ext.kernel import embedded

TIMEOUT = 120
STARTUP_S = 90  # longest wait for a new engine's warm pools to fill
MIB = 1 << 20
ENGINE_WARMUP = 5  # untimed cells before the first row
IPYKERNEL = "python3"

NOTEBOOK = [
    ("imports", "import numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt"),
    (
        "DataFrame 100k rows",
        "n = 100_000\n"
        "i = np.arange(n)\n"
        "df = pd.DataFrame({\n"
        "    'store': i % 50,\n"
        "    'day': (i // 50) % 365,\n"
        "    'units': (i * 7919) % 13 + 1,\n"
        "    'price': ((i * 104729) % 1000) / 10 + 1,\n"
        "})\n"
        "df.shape",
    ),
    (
        "derive columns",
        "df['revenue'] = df['units'] * df['price']\n"
        "df['month'] = df['day'] // 31 + 1\n"
        "df['weekday'] = df['day'] % 7\n"
        "df.head()",
    ),
    (
        "groupby",
        "by_store = df.groupby('store').agg(\n"
        "    revenue=('revenue', 'sum'), units=('units', 'sum'), orders=('units', 'size'))\n"
        "by_store.sort_values('revenue', ascending=False).head()",
    ),
    ("describe", "df[['units', 'price', 'revenue']].describe()"),
    (
        "plot",
        "monthly = df.groupby('month')['revenue'].sum()\n"
        "fig, ax = plt.subplots(figsize=(6, 3))\n"
        "monthly.plot(ax=ax, marker='o')\n"
        "ax.set_title('Revenue by month')\n"
        "plt.show()",
    ),
    (
        "numpy on a column",
        "log_rev = np.log1p(df['revenue'].to_numpy())\n"
        "z = (log_rev - log_rev.mean()) / log_rev.std()\n"
        "z99 = float(np.percentile(z, 99))\n"
        "round(z99, 4)",
    ),
    ("filter", "big = df[(z > 1) & (df['weekday'] < 5)]\nlen(big)"),
    (
        "merge",
        "regions = pd.DataFrame({'store': range(50),\n"
        "                        'region': [['north', 'south', 'east', 'west'][s % 4]\n"
        "                                   for s in range(50)]})\n"
        "merged = big.merge(regions, on='store')\n"
        "by_region = merged.groupby('region')['revenue'].agg(['count', 'sum', 'mean'])\n"
        "by_region",
    ),
    (
        "print a summary",
        "top = int(by_store['revenue'].idxmax())\n"
        "print(f\"rows {len(df)}, columns {df.shape[1]}, revenue {df['revenue'].sum():.2f}\")\n"
        "print(f\"top store {top}: {by_store.loc[top, 'revenue']:.2f}; \"\n"
        "      f'peak month {int(monthly.idxmax())} of {monthly.size}')\n"
        "print(f'z p99 {z99:.4f}; big orders {len(big)}, merged {len(merged)}')\n"
        "for region, row in by_region.iterrows():\n"
        "    print(f\"{region}: {int(row['count'])} orders, {row['sum']:.2f}, \"\n"
        "          f\"mean {row['mean']:.3f}\")",
    ),
]


# -- running cells -------------------------------------------------------------------------------
class Kernel:
    """One kernel started by jupyter_client from this process; ``cell`` runs and times a cell.
    For a Braindrill kernel (in this process) it also reads the engine's figures."""

    def __init__(self, kernel_name: str, cwd: str):
        self.name = kernel_name
        self.braindrill = kernel_name.startswith("braindrill-")
        self.language = kernel_name.removeprefix("braindrill-")
        self.km = KernelManager(kernel_name=kernel_name)
        self.km.start_kernel(cwd=cwd)  # ipykernel's files go there, not into the checkout
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=TIMEOUT)
        if not self.braindrill:
            self.cell("%matplotlib inline")  # plots inline, as under Braindrill
        self.settle(STARTUP_S, every=True)  # the engine's first pools filled, nothing competes

    def cell(self, code: str) -> dict:
        """Run ``code``; returns its time in ms, status, streams, result and display types."""
        out = {"stdout": "", "stderr": "", "result": None, "mimes": [], "error": None}

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif kind == "execute_result":
                out["result"] = content["data"].get("text/plain")
            elif kind == "display_data":
                out["mimes"] += sorted(content["data"])
            elif kind == "error":
                out["error"] = f"{content['ename']}: {content['evalue']}"

        started = time.perf_counter()
        reply = self.kc.execute_interactive(code, timeout=TIMEOUT, output_hook=hook)
        out["ms"] = (time.perf_counter() - started) * 1000
        out["status"] = reply["content"]["status"]
        return out

    def _on_loop(self, fn):
        loop = self.km.provisioner.kernel_loop

        async def call():
            return fn(loop.engine)

        return asyncio.run_coroutine_threadsafe(call(), loop.loop).result(30)

    def state_bytes(self) -> int | None:
        """The bytes of state the engine keeps for this kernel now (Braindrill only)."""
        if not self.braindrill:
            return None
        key = self.km.provisioner.kernel.state_key
        return self._on_loop(lambda engine: engine.states.size(key))

    def _pools(self) -> dict[str, tuple[int, int, int, int]]:
        """Every language's warm pool summed over the hosts: (hits, misses, ready, target)."""

        def count(engine):
            pools: dict[str, list[int]] = {}
            for host_pool in engine.host_pools.values():
                for lang, s in host_pool.status().items():
                    total = pools.setdefault(lang, [0, 0, 0, 0])
                    for i, field in enumerate(("hits", "misses", "ready", "target")):
                        total[i] += s[field]
            return {lang: tuple(total) for lang, total in pools.items()}

        return self._on_loop(count)

    def pool(self) -> tuple[int, int]:
        """Warm-pool hits and misses of this kernel's language so far."""
        if not self.braindrill:
            return 0, 0
        return self._pools().get(self.language, (0, 0, 0, 0))[:2]

    def settle(self, max_s: float, every: bool = False) -> None:
        """Wait (at most ``max_s``) until this language's warm pool (``every``: every pool of
        the engine) is full again, so that the next cell finds a warm container and no refill
        competes with it. Nothing to wait for with ipykernel."""
        deadline = time.monotonic() + max_s
        while self.braindrill and time.monotonic() < deadline:
            pools = self._pools()
            if not every:
                pools = {self.language: pools.get(self.language, (0, 0, 0, 1))}
            if all(ready >= max(target, 1) for _, _, ready, target in pools.values()):
                return
            time.sleep(0.05)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def check(out: dict, expected: str | None) -> str | None:
    """What is wrong with a cell's outcome (None when nothing)."""
    if out["status"] != "ok":
        return f"status {out['status']}: {out['error']}"
    if expected is not None and out["result"] != expected:
        return f"result {out['result']!r}, expected {expected!r}"
    if out["stderr"]:
        return f"stderr {out['stderr'].strip()!r}"
    return None


# -- 1. cell latency by state size ---------------------------------------------------------------
def state_cases(sizes: list[float], modes: list[str], braindrill: bool) -> list[tuple]:
    """(label, setup code, timed code, expected result) of each row."""
    cases = []
    for mib in sizes:
        n = int(mib * MIB)
        if n == 0:
            cases.append(("empty", "%reset -f", "len(b'')", "0"))
            if braindrill:
                cases.append(("%%stateless cell", "%reset -f", "%%stateless\nlen(b'')", "0"))
            continue
        if "variable" in modes:
            setup = f"%reset -f\nimport os\nblob = os.urandom({n})\nlen(blob)"
            cases.append((f"variable {mib:g} MiB", setup, "len(blob)", str(n)))
        if "file" in modes:
            setup = (
                f"%reset -f\nimport os\nwith open('state.bin', 'wb') as fh:\n"
                f"    fh.write(os.urandom({n}))\ndel fh\nos.path.getsize('state.bin')"
            )
            code = "os.path.getsize('state.bin')"
            cases.append((f"file {mib:g} MiB", setup, code, str(n)))
    return cases


def measure_sizes(kernel: Kernel, args, problems: list[str]) -> list[list]:
    for _ in range(ENGINE_WARMUP):  # the new engine's first cells are slower: none in a row
        kernel.settle(args.settle_s)
        kernel.cell("len(b'')")
    rows = []
    for label, setup, code, expected in state_cases(args.sizes, args.modes, kernel.braindrill):
        where = f"{kernel.name}, {label}"
        kernel.settle(args.settle_s)
        out = kernel.cell(setup)
        if out["status"] != "ok" or out["stderr"]:
            problems.append(f"{where}: setup {setup!r}: {check(out, None)}")
        hits, misses = kernel.pool()
        samples, wrong, reported = [], 0, None
        for i in range(args.warmup + args.cells):
            kernel.settle(args.settle_s)
            out = kernel.cell(code)
            problem = check(out, expected)
            if problem:
                wrong += 1
                problems.append(f"{where}: cell {code!r}: {problem}")
            elif out["result"] is not None:
                reported = int(out["result"])
            if i >= args.warmup:
                samples.append(out["ms"])
        hits2, misses2 = kernel.pool()
        kept = kernel.state_bytes()
        rows.append(
            [
                kernel.name,
                label,
                mib(reported),
                mib(kept) if kernel.braindrill else "in its process",
                percentile(samples, 50),
                percentile(samples, 90),
                max(samples),
                f"{hits2 - hits}/{misses2 - misses}" if kernel.braindrill else "-",
                f"{args.warmup + args.cells - wrong}/{args.warmup + args.cells} ok",
            ]
        )
        print(f"  {where}: p50 {rows[-1][4]:.0f} ms", flush=True)
    return rows


def print_sizes(rows: list[list], args) -> None:
    print_table(
        "Cell latency by the state it carries (a trivial cell after a setup cell)",
        [
            "kernel",
            "state",
            "cell reports MiB",
            "engine keeps MiB",
            "p50 ms",
            "p90 ms",
            "max ms",
            "pool hits/misses",
            "cells",
        ],
        rows,
        note=f"{args.cells} timed cells per row after {args.warmup} untimed, each once the warm "
        f"pool was full again (waiting at most {args.settle_s:g} s). State: random bytes "
        "(incompressible) in a variable (`len(blob)`) or a file (`os.path.getsize`); `empty` "
        "after `%reset -f`; a `%%stateless` cell sends and keeps none. 'engine keeps' is "
        "StateStore.size of the kernel's key (the tar of its files and pickled variables); "
        f"ipykernel keeps its variables in its process.\n{machine_summary()}",
    )


def mib(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / MIB:.2f}" if n >= MIB // 100 else f"{n} B"


# -- 2. the data notebook ------------------------------------------------------------------------
def notebook_pass(kernel: Kernel, settle_s: float, problems: list[str]) -> dict:
    """One pass of the notebook from empty variables: per-cell ms, their sum, the wall time
    (with any waits for the pool), the summary, the state kept after each cell (Braindrill)."""
    kernel.cell("%reset -f")
    cells, states = [], []
    hits, misses = kernel.pool()
    started = time.perf_counter()
    for name, code in NOTEBOOK:
        kernel.settle(settle_s)
        out = kernel.cell(code)
        problem = check(out, None)
        if name == "plot" and "image/png" not in out["mimes"]:
            problem = f"no image/png among {out['mimes']}"
        if problem:
            problems.append(f"{kernel.name}, notebook cell {name!r}: {problem}")
        cells.append(out)
        states.append(kernel.state_bytes())
    wall = (time.perf_counter() - started) * 1000
    hits2, misses2 = kernel.pool()
    return {
        "cells": cells,
        "sum": sum(c["ms"] for c in cells),
        "wall": wall,
        "pool": (hits2 - hits, misses2 - misses),
        "summary": cells[-1]["stdout"],
        "states": states,
    }


def measure_notebook(kernels: list[Kernel], args, problems: list[str]) -> dict:
    """An untimed pass on ipykernel (its first imports and plot) and the first cell on
    Braindrill (its engine's first run), a full warm pool, then ``--runs`` timed passes, the
    kernels in turn."""
    for kernel in kernels:
        if kernel.braindrill:
            kernel.cell(NOTEBOOK[0][1])
            kernel.settle(60)
        else:
            notebook_pass(kernel, 0, problems)
    passes = {k.name: [] for k in kernels}
    for r in range(args.runs):
        for kernel in kernels:
            passes[kernel.name].append(notebook_pass(kernel, args.notebook_settle_s, problems))
        print(f"  notebook pass {r + 1}/{args.runs} done", flush=True)
    return passes


def print_notebook(passes: dict, args) -> None:
    (bd, bd_passes), (ipy, ipy_passes) = passes.items()
    rows = []
    for i, (name, _) in enumerate(NOTEBOOK):
        a = percentile([p["cells"][i]["ms"] for p in bd_passes], 50)
        b = percentile([p["cells"][i]["ms"] for p in ipy_passes], 50)
        rows.append([f"{i + 1}. {name}", a, b, f"{a / b:.0f}x", mib(bd_passes[-1]["states"][i])])
    pace = (
        "back to back (Run All)"
        if not args.notebook_settle_s
        else "each after the warm pool refilled (a user's pace)"
    )
    print_table(
        "A 10-cell data notebook: per-cell p50, Braindrill vs ipykernel",
        ["cell", f"{bd} p50 ms", f"{ipy} p50 ms", "ratio", "Braindrill state after (MiB)"],
        rows,
        note=f"p50 over {args.runs} timed passes, cells {pace}; the state column is what the "
        "engine keeps for the kernel after the cell (last pass).",
    )
    rows = []
    for label, done in passes.items():
        sums = [p["sum"] for p in done]
        walls = [p["wall"] for p in done]
        per_cell = [c["ms"] for p in done for c in p["cells"]]
        hits = sum(p["pool"][0] for p in done)
        misses = sum(p["pool"][1] for p in done)
        rows.append(
            [
                label,
                percentile(walls, 50),
                min(walls),
                max(walls),
                percentile(sums, 50),
                percentile(per_cell, 50),
                f"{hits}/{misses}" if label.startswith("braindrill") else "-",
            ]
        )
    summaries = {p["summary"] for done in passes.values() for p in done}
    same = (
        "the same summary in every pass of both kernels"
        if len(summaries) == 1
        else f"DIFFERENT summaries: {sorted(summaries)}"
    )
    print_table(
        "The data notebook end to end (10 cells)",
        [
            "kernel",
            "wall p50 ms",
            "wall min ms",
            "wall max ms",
            "sum of cells p50 ms",
            "any cell p50 ms",
            "pool hits/misses",
        ],
        rows,
        note=f"Outputs: {same}; every cell ok and the plot a PNG unless listed under Problems.",
    )
    print("The summary the last cell printed (Braindrill's last pass):\n")
    print("    " + bd_passes[-1]["summary"].rstrip("\n").replace("\n", "\n    ") + "\n")


# -- main ----------------------------------------------------------------------------------------
def write_config(workdir_mib: int) -> str:
    """A Jupyter config dir whose jupyter_server_config.json the embedded engine reads."""
    config_dir = tempfile.mkdtemp(prefix="bench-state-config-")
    config = {
        "WarmPools": {
            "languages": {"python": {"min": 2, "max": 4}, "python-data": {"min": 2, "max": 4}}
        },
        "LimitsPolicy": {"workdir_mib": workdir_mib},
    }
    with open(os.path.join(config_dir, "jupyter_server_config.json"), "w") as f:
        json.dump(config, f)
    return config_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", type=float, nargs="+", default=[0, 1, 10, 50], help="state sizes, MiB"
    )
    parser.add_argument(
        "--modes", nargs="+", default=["variable", "file"], choices=["variable", "file"]
    )
    parser.add_argument(
        "--kernels",
        nargs="+",
        default=["braindrill-python"],
        help="Braindrill kernels of the size table (ipykernel is added as the baseline); "
        "braindrill-python-data adds ~5 minutes on a loaded 2-core machine (its warm "
        "containers, which import pandas and matplotlib, take seconds to refill)",
    )
    parser.add_argument("--cells", type=int, default=10, help="timed cells per size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed cells per size first")
    parser.add_argument("--runs", type=int, default=3, help="timed passes of the notebook")
    parser.add_argument(
        "--workdir-mib",
        type=int,
        default=192,
        help="LimitsPolicy.workdir_mib: the work directory holds the state's files and pickle",
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        default=10.0,
        help="before each cell of the size table, wait at most this long for the warm pool to be "
        "full again (0: back to back, a refill may be missed and compete)",
    )
    parser.add_argument(
        "--notebook-settle-s",
        type=float,
        default=0.0,
        help="the same before each notebook cell (default 0: back to back, as Run All)",
    )
    parser.add_argument("--no-sizes", action="store_true", help="skip the size table")
    parser.add_argument("--no-notebook", action="store_true", help="skip the notebook")
    args = parser.parse_args()

    config_dir = write_config(args.workdir_mib)
    os.environ["JUPYTER_CONFIG_DIR"] = config_dir
    cwd = tempfile.mkdtemp(prefix="bench-state-kernels-")
    print(machine_summary())
    started = time.monotonic()
    problems: list[str] = []
    try:
        if not args.no_sizes:
            rows = []
            for name in [*args.kernels, IPYKERNEL]:
                kernel = Kernel(name, cwd)
                try:
                    rows += measure_sizes(kernel, args, problems)
                finally:
                    kernel.close()
            print_sizes(rows, args)
        if not args.no_notebook:
            kernels = [Kernel("braindrill-python-data", cwd), Kernel(IPYKERNEL, cwd)]
            try:
                passes = measure_notebook(kernels, args, problems)
            finally:
                for kernel in kernels:
                    kernel.close()
            print_notebook(passes, args)
            print(machine_summary())
    finally:
        embedded.shutdown()  # the engine's warm containers are removed
        shutil.rmtree(cwd, ignore_errors=True)
        shutil.rmtree(config_dir, ignore_errors=True)
    left = leftover_containers(os.getpid())
    print(f"\nWhole run: {time.monotonic() - started:.0f} s. Containers left: {left or 'none'}.")
    print("Problems: " + ("none" if not problems else "\n- " + "\n- ".join(problems)))


if __name__ == "__main__":
    main()
