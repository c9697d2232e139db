"""The kernels of ``bench_notebooks.py``: its two notebooks and the cells at a user's pace, run
by nbclient and jupyter_client in a process of their own per engine configuration (this file as
a script: ``<kind> <part> <config dir>``, the figures as JSON on its last line), against the
embedded engine of that kind or ipykernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
# "attach": the default kind with the local host's channel off (its runners keep Docker's attach
# stream, as before the channel): what the channel saves, in the same run.
ATTACH_HOSTS = [{"name": "local", "channel": False}]
TIMEOUT = 300


def worker(kind: str, part: str, config_dir: str) -> dict:
    """Run in a subprocess (this file as a script): ``part`` with kernels of the embedded engine
    of kind ``kind`` (``ipykernel``: the baseline). Returns the figures as JSON."""
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
        argv = [sys.executable, __file__, kind, part, config_dir]
        # cwd: the notebooks write files (ipykernel where it runs), never into the checkout
        done = subprocess.run(
            argv, env=env, cwd=config_dir, capture_output=True, text=True, timeout=3600
        )
        if done.returncode != 0:
            raise RuntimeError(f"{kind} {part} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def engine_config(kind: str) -> dict:
    if kind == "attach":
        return {"sandbox": "auto", "hosts": ATTACH_HOSTS}
    return {"sandbox": kind}


if __name__ == "__main__":
    print(json.dumps(worker(*sys.argv[1:4])))
