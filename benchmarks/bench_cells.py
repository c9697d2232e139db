"""Cell latency of rich cells: Braindrill's python-data kernel (every cell a fresh, warm
container) against a warm ipykernel, side by side in one run; and the python-data image.

```sh
python benchmarks/bench_cells.py  # --cells 20
```

Each kernel is started from this process with jupyter_client, as a script or nbclient would, and
runs two untimed cells of each kind, then ``--cells`` timed ones, interleaved by kind: from
``execute_request`` sent to ``execute_reply`` received, with every output (``execute_result``,
``display_data``) in. Braindrill's embedded engine keeps two warm python-data containers (its
configuration comes from a ``jupyter_server_config.json`` this script writes, as an operator's
would), so a cell pays the hand-off to a warm container, not a cold start. The baseline is an
ipykernel whose process already imported the same libraries (its first cells import them).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import docker
from common import machine_summary, percentile, print_table
from jupyter_client import KernelManager

from braindrill_ext.hosts.imagebuild import build_language
from braindrill_ext.kernel import embedded
from braindrill_ext.languages import LanguageRegistry

CELLS = {
    'print("hi")': 'print("hi")',
    "6*7": "6*7",
    "DataFrame": "import pandas as pd\npd.DataFrame({'a': range(100), 'b': range(100)}).describe()",
    "plot": "import matplotlib.pyplot as plt\nplt.plot(range(10))\nplt.show()",
}
KERNELS = [
    ("Braindrill braindrill-python-data (warm)", "braindrill-python-data"),
    ("ipykernel python3 (warm)", "python3"),
]
TIMEOUT = 120
IMAGE = "braindrill/python-data:bookworm"


def cell(kc, code: str) -> float:
    started = time.perf_counter()
    reply = kc.execute_interactive(code, timeout=TIMEOUT, output_hook=lambda msg: None)
    elapsed = (time.perf_counter() - started) * 1000
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"{code!r} failed: {reply['content']}")
    return elapsed


def measure(kernel_name: str, n: int, gap_s: float) -> dict[str, list[float]]:
    km = KernelManager(kernel_name=kernel_name)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        for code in CELLS.values():
            if kernel_name == "python3":  # the plot inline, as under Braindrill
                cell(kc, "%matplotlib inline")
            for _ in range(2):
                cell(kc, code)
        samples: dict[str, list[float]] = {name: [] for name in CELLS}
        for _ in range(n):
            for name, code in CELLS.items():
                time.sleep(gap_s)
                samples[name].append(cell(kc, code))
        return samples
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def image_figures(build: bool) -> list:
    """The python-data image: its size, and (``--build``) the time to build it again from
    Debian packages (the shared base kept), as `braindrill-images prepare` does."""
    client = docker.from_env()
    built = "-"
    try:
        if build:
            language = LanguageRegistry.from_kernelspecs().get("python-data")
            started = time.monotonic()
            build_language(client, language, lambda who, msg: None, nocache=True)
            built = f"{time.monotonic() - started:.0f} s"
        size = client.images.get(IMAGE).attrs["Size"] / 2**20
    except docker.errors.ImageNotFound:
        return [IMAGE, "not built", built]
    finally:
        client.close()
    return [IMAGE, f"{size:.0f} MiB", built]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=20, help="timed cells of each kind")
    parser.add_argument(
        "--gaps",
        type=float,
        nargs="+",
        default=[0.0, 3.0],
        help="seconds between cells: 0 runs them back to back; a notebook user's pace leaves the "
        "warm pool time to refill (default: 0 and 3)",
    )
    parser.add_argument(
        "--build", action="store_true", help="also time a rebuild of the python-data image"
    )
    args = parser.parse_args()
    config_dir = tempfile.mkdtemp(prefix="bench-cells-config-")
    config = {"WarmPools": {"languages": {"python-data": {"min": 2, "max": 4}}}}
    with open(os.path.join(config_dir, "jupyter_server_config.json"), "w") as f:
        json.dump(config, f)
    os.environ["JUPYTER_CONFIG_DIR"] = config_dir
    print(machine_summary())
    rows = []
    for gap in args.gaps:
        for label, kernel_name in KERNELS:
            samples = measure(kernel_name, args.cells, gap)
            row = [label, gap]
            for name in CELLS:
                row += [percentile(samples[name], 50), percentile(samples[name], 90)]
            if kernel_name.startswith("braindrill"):
                pool = embedded.kernel_loop().engine.describe_hosts()["workers"][0]["pool"]
                stats = pool.get("python-data", {})
                row.append(f"{stats.get('hits', 0)} hits, {stats.get('misses', 0)} misses")
            else:
                row.append("-")
            rows.append(row)
    headers = ["kernel", "gap s"]
    for name in CELLS:
        headers += [f"{name} p50 ms", f"{name} p90 ms"]
    headers.append("warm pool (cumulative)")
    print_table(
        "Cell latency, Braindrill (a fresh warm container per cell) vs ipykernel",
        headers,
        rows,
        note=f"{args.cells} timed cells of each kind per kernel, interleaved by kind.",
    )
    print_table(
        "The python-data image (built from Debian packages)",
        ["image", "size", "build time"],
        [image_figures(args.build)],
        note="Build: `braindrill-images prepare --no-pull python-data` on the shared base "
        "(apt-get of numpy, scipy, pandas, matplotlib, IPython); with --build only.",
    )


if __name__ == "__main__":
    main()
