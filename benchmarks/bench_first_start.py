"""The first kernel start of a new process, and the second in the same process: Braindrill (this
tree, and optionally an earlier install) against ipykernel, side by side in one run.

```sh
python benchmarks/bench_first_start.py --runs 10 --before /tmp/venv-before/bin/python
```

Each sample is a new Python process that does what a script does first — ``KernelManager(
kernel_name=...)``, ``start_kernel()``, ``client().start_channels()``, ``wait_for_ready()`` —
and reports how long each step took (``wait_for_ready`` includes jupyter_client's fixed 0.2 s
IOPub flush), then starts a second kernel the same way: the difference is what only a process's
first kernel pays (imports made on first use: jupyter_client's of IPython, the provisioner's of
the Docker SDK; the engine's start). ``--before PYTHON`` adds the same for another environment's
interpreter (an install of an earlier commit), so that before and after are measured in the same
run on the same machine. The interpreter start-up itself is not counted; importing
jupyter_client (and what it imports) is, in "import".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from common import machine_summary, percentile, print_table

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
from jupyter_client.manager import KernelManager
t1 = time.perf_counter()


def start():
    started = time.perf_counter()
    km = KernelManager(kernel_name=sys.argv[1])
    km.start_kernel()
    t = time.perf_counter()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    done = time.perf_counter()
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    return t - started, done - t


first, ready = start()
second, ready2 = start()
print(json.dumps({"import": t1 - t0, "start_kernel": first, "wait_for_ready": ready,
                  "second start_kernel": second, "second wait_for_ready": ready2}))
"""
STEPS = ("import", "start_kernel", "wait_for_ready", "second start_kernel", "second wait_for_ready")


def sample(python: str, kernel: str) -> dict:
    # Not from the checkout: `python -c` would import its braindrill_ext, not the environment's.
    out = subprocess.run(
        [python, "-c", PROBE, kernel],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="new processes per variant")
    parser.add_argument("--before", help="the Python of an environment with an earlier install")
    args = parser.parse_args()
    print(machine_summary())
    variants = [("Braindrill (this tree)", sys.executable, "braindrill-python")]
    if args.before:
        variants.append(("Braindrill (--before)", args.before, "braindrill-python"))
    variants.append(("ipykernel", sys.executable, "python3"))
    rows = []
    for label, python, kernel in variants:
        samples = [sample(python, kernel) for _ in range(args.runs)]
        ms = {step: [s[step] * 1000 for s in samples] for step in STEPS}
        total = [sum(s[step] for step in STEPS[1:3]) * 1000 for s in samples]
        again = [sum(s[step] for step in STEPS[3:]) * 1000 for s in samples]
        rows.append(
            [label]
            + [percentile(ms[step], 50) for step in STEPS[:3]]
            + [percentile(total, 50), percentile(total, 90), percentile(again, 50)]
        )
    print_table(
        "First kernel start in a new process (ms)",
        [
            "kernel",
            "import p50",
            "start_kernel p50",
            "wait_for_ready p50",
            "start+ready p50",
            "start+ready p90",
            "2nd start+ready p50",
        ],
        rows,
        note=f"{args.runs} new processes per variant, one variant after the other.",
    )


if __name__ == "__main__":
    main()
