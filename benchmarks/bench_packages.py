"""Packages at run time (issue 24): the time of a first and of a cached ``%pip install`` of a
small package in a Braindrill kernel, and of the first cell that imports it, side by side with a
plain ``pip download`` of the same requirement on this machine (what the server runs) in one run.

```sh
python benchmarks/bench_packages.py  # --package tabulate==0.9.0 --runs 3
```

Per run: a fresh, empty wheel cache (``Packages.cache_dir``); kernel A installs the package (the
server downloads it from the index: PyPI unless ``--index-url``), kernel B then installs the same
version (served from the cache: the index is asked for its page only); each then imports it in a
cell (a fresh sandbox carrying the unpacked wheel). Times are from ``execute_request`` sent to
``execute_reply`` received. The kernels live in this process (its embedded engine, configured by
a ``jupyter_server_config.json`` this script writes: packages on, warm pools on).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from common import leftover_containers, machine_summary, percentile, print_table
from jupyter_client import KernelManager

from braindrill_ext.kernel import embedded


def timed_cell(kc, code: str) -> float:
    start = time.perf_counter()
    reply = kc.execute_interactive(code, timeout=300, output_hook=lambda msg: None)
    elapsed = (time.perf_counter() - start) * 1000
    if reply["content"]["status"] != "ok":
        raise SystemExit(f"cell failed: {code!r}: {reply['content']}")
    return elapsed


def kernel():
    km = KernelManager(kernel_name="braindrill-python")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


def pip_download(requirement: str, index_url: str) -> float:
    with tempfile.TemporaryDirectory() as dest:
        argv = [sys.executable, "-m", "pip", "download", "--no-cache-dir", "-q", "--no-deps"]
        argv += ["--only-binary=:all:", "--index-url", index_url, "--dest", dest, requirement]
        start = time.perf_counter()
        subprocess.run(argv, check=True)
        return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default="tabulate==0.9.0")
    parser.add_argument("--index-url", default="https://pypi.org/simple")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    module = args.package.split("=")[0].split("[")[0].replace("-", "_")
    work = tempfile.mkdtemp(prefix="bench-packages-")
    config = {
        "Packages": {"enabled": True, "index_url": args.index_url},
        "WarmPools": {"enabled": True},
    }
    with open(os.path.join(work, "jupyter_server_config.json"), "w") as f:
        json.dump(config, f)
    os.environ["JUPYTER_CONFIG_DIR"] = work
    engine = embedded.kernel_loop().engine
    times = {"first": [], "cached": [], "import_first": [], "import_cached": [], "pip": []}
    try:
        for run in range(args.runs):
            engine.packages.cache_dir = os.path.join(work, f"cache-{run}")
            (km_a, kc_a), (km_b, kc_b) = kernel(), kernel()
            timed_cell(kc_a, "1")  # the kernels' first cells, untimed
            timed_cell(kc_b, "1")
            times["first"].append(timed_cell(kc_a, f"%pip install {args.package}"))
            times["cached"].append(timed_cell(kc_b, f"%pip install {args.package}"))
            times["import_first"].append(timed_cell(kc_a, f"import {module}"))
            times["import_cached"].append(timed_cell(kc_b, f"import {module}"))
            times["pip"].append(pip_download(args.package, args.index_url))
            for km, kc in ((km_a, kc_a), (km_b, kc_b)):
                kc.stop_channels()
                km.shutdown_kernel(now=True)
    finally:
        embedded.shutdown()
    rows = [
        [label, percentile(times[key], 50), min(times[key]), max(times[key])]
        for label, key in [
            (f"%pip install {args.package}, first (downloads)", "first"),
            (f"%pip install {args.package}, cached (second kernel)", "cached"),
            (f"import {module}, next cell (kernel A)", "import_first"),
            (f"import {module}, next cell (kernel B)", "import_cached"),
            ("pip download --no-deps on this machine (baseline)", "pip"),
        ]
    ]
    print_table(
        f"Packages: {args.package} from {args.index_url}, {args.runs} runs",
        ["what", "median ms", "min ms", "max ms"],
        rows,
        note=machine_summary(),
    )
    left = leftover_containers()
    if left:
        raise SystemExit(f"containers left: {left}")


if __name__ == "__main__":
    main()
