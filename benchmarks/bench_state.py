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

The kernel both parts run cells on is in ``state_kernel.py``, the notebook in
``data_notebook.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

from common import leftover_containers, machine_summary, percentile, print_table
from data_notebook import measure_notebook, print_notebook
from state_kernel import MIB, Kernel, check, mib

from braindrill_ext.kernel import embedded

ENGINE_WARMUP = 5  # untimed cells before the first row
IPYKERNEL = "python3"


# -- 1. cell latency by state size ---------------------------------------------------------------
def state_cases(sizes: list[float], modes: list[str], braindrill: bool) -> list[tuple]:
    """(label, setup code, timed code, expected result) of each row."""
    cases = []
    for size_mib in sizes:
        n = int(size_mib * MIB)
        if n == 0:
            cases.append(("empty", "%reset -f", "len(b'')", "0"))
            if braindrill:
                cases.append(("%%stateless cell", "%reset -f", "%%stateless\nlen(b'')", "0"))
            continue
        if "variable" in modes:
            setup = f"%reset -f\nimport os\nblob = os.urandom({n})\nlen(blob)"
            cases.append((f"variable {size_mib:g} MiB", setup, "len(blob)", str(n)))
        if "file" in modes:
            setup = (
                f"%reset -f\nimport os\nwith open('state.bin', 'wb') as fh:\n"
                f"    fh.write(os.urandom({n}))\ndel fh\nos.path.getsize('state.bin')"
            )
            code = "os.path.getsize('state.bin')"
            cases.append((f"file {size_mib:g} MiB", setup, code, str(n)))
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
