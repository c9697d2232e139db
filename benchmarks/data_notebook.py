"""The data notebook of ``bench_state.py`` (its second table): ten cells a data scientist writes
(``NOTEBOOK``), each using the earlier cells' variables, run in passes from empty variables on
``braindrill-python-data`` and on ipykernel (``notebook_pass``, ``measure_notebook``), every cell
checked, and the per-cell and end-to-end tables (``print_notebook``).
"""

from __future__ import annotations

import time

from common import percentile, print_table
from state_kernel import Kernel, check, mib

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
