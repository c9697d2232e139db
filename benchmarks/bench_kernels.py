"""Braindrill kernels against ipykernel, side by side in one run.

```sh
python benchmarks/bench_kernels.py  # --starts 20 --cells 20 --idle 200 --ipykernel-idle 20
```

For each kernel (``braindrill-python`` and ipykernel's ``python3``), from this script's process
with jupyter_client, as a script or nbclient would:

1. **start**: ``KernelManager.start_kernel()`` until the ``kernel_info_reply`` to a request sent
   right after it (a client's ``wait_for_ready`` adds a fixed 0.2 s IOPub flush), ``--starts``
   times, p50/p90 in ms; each kernel is shut down before the next starts. Braindrill's first start
   of a language in a process also probes the runtime's version (one container run): it is shown
   apart and left out of the percentiles.
2. **print("hi")**: ``execute_interactive('print("hi")')`` until its reply, ``--cells`` times on one
   kernel after two untimed ones, p50/p90 in ms. A Braindrill cell runs in a fresh container (a warm
   one when the engine's warm pool has it); an ipykernel cell runs in the kernel's process.
3. **idle memory**: ``--idle`` Braindrill kernels (default 200) started through one
   ``MultiKernelManager`` (one ZMQ context, as a Jupyter server holds them), each checked with a
   ``kernel_info`` request; the figure is this process's RSS growth. ipykernel's is this process's
   RSS growth plus the PSS of every kernel process, measured on ``--ipykernel-idle`` kernels (20 by
   default: 200 would need ~10 GB) and scaled per kernel to the same count.
"""

from __future__ import annotations

import argparse
import gc
import os
import time

from common import machine_summary, percentile, print_table
from jupyter_client import KernelManager, MultiKernelManager

BRAINDRILL, IPYKERNEL = "braindrill-python", "python3"
TIMEOUT = 120


def start_once(kernel_name: str) -> tuple[float, KernelManager]:
    started = time.perf_counter()
    km = KernelManager(kernel_name=kernel_name)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    msg_id = kc.kernel_info()
    while kc.get_shell_msg(timeout=TIMEOUT)["parent_header"].get("msg_id") != msg_id:
        pass
    elapsed = (time.perf_counter() - started) * 1000
    kc.stop_channels()
    return elapsed, km


def starts(kernel_name: str, n: int) -> tuple[list[float], float | None]:
    samples, first = [], None
    for i in range(n + (kernel_name == BRAINDRILL)):
        elapsed, km = start_once(kernel_name)
        km.shutdown_kernel(now=True)
        if kernel_name == BRAINDRILL and i == 0:
            first = elapsed
        else:
            samples.append(elapsed)
    return samples, first


def cells(kernel_name: str, n: int) -> list[float]:
    _, km = start_once(kernel_name)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=TIMEOUT)
    samples = []
    try:
        for i in range(n + 2):
            out = []
            started = time.perf_counter()
            reply = kc.execute_interactive('print("hi")', timeout=TIMEOUT, output_hook=out.append)
            elapsed = (time.perf_counter() - started) * 1000
            text = "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream")
            if reply["content"]["status"] != "ok" or text != "hi\n":
                raise RuntimeError(f"{kernel_name}: unexpected answer {reply['content']} {text!r}")
            if i >= 2:
                samples.append(elapsed)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return samples


def rss_kib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))


def idle_memory(kernel_name: str, n: int) -> tuple[float, float]:
    """(MiB per idle kernel, MiB for ``n`` of them) as described in the module docstring."""
    mkm = MultiKernelManager()
    gc.collect()
    before = rss_kib()
    try:
        for _ in range(n):
            kernel_id = mkm.start_kernel(kernel_name=kernel_name)
            kc = mkm.get_kernel(kernel_id).client()
            kc.start_channels()
            kc.wait_for_ready(timeout=TIMEOUT)
            kc.stop_channels()
        time.sleep(1.0)
        gc.collect()
        total = rss_kib() - before
        for kernel_id in mkm.list_kernel_ids():
            provisioner = mkm.get_kernel(kernel_id).provisioner
            pid = getattr(provisioner, "pid", None)
            if pid:
                total += pss_kib(pid)
    finally:
        mkm.shutdown_all(now=True)
    return total / 1024 / n, total / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=20, help="kernel starts per kernel")
    parser.add_argument("--cells", type=int, default=20, help='timed print("hi") cells')
    parser.add_argument("--idle", type=int, default=200, help="idle Braindrill kernels")
    parser.add_argument("--ipykernel-idle", type=int, default=20, help="idle ipykernels")
    args = parser.parse_args()
    print(machine_summary())

    rows = []
    for name, label, idle in [
        (BRAINDRILL, "Braindrill braindrill-python (in-process)", args.idle),
        (IPYKERNEL, "ipykernel python3 (a process per kernel)", args.ipykernel_idle),
    ]:
        start_samples, first = starts(name, args.starts)
        cell_samples = cells(name, args.cells)
        per_kernel, _ = idle_memory(name, idle)
        rows.append(
            [
                label,
                percentile(start_samples, 50),
                percentile(start_samples, 90),
                first,
                percentile(cell_samples, 50),
                percentile(cell_samples, 90),
                per_kernel,
                per_kernel * args.idle,
                f"{idle} measured" + ("" if idle == args.idle else f", x{args.idle / idle:g}"),
            ]
        )
    ratio = rows[1][1] / rows[0][1]
    print_table(
        "Kernels: Braindrill vs ipykernel",
        [
            "kernel",
            "start p50 ms",
            "start p90 ms",
            "first start ms",
            'print("hi") p50 ms',
            'print("hi") p90 ms',
            "MiB per idle kernel",
            f"MiB for {args.idle} idle",
            "idle kernels",
        ],
        rows,
        note=f"Start p50: Braindrill is {ratio:.0f}x faster than ipykernel. "
        f"{args.starts} starts, {args.cells} cells per kernel; pid {os.getpid()}.",
    )


if __name__ == "__main__":
    main()
