"""REST benchmarks of Braindrill, measured side by side with their baselines in one run.

``latency``: ``print("hello")`` end to end through ``POST /lang/python`` of a real Jupyter server
(HTTP over loopback, token auth), one request at a time, against ``docker run --rm`` of the same
image per execution (the original engine's way) and the bare interpreter on the host.

``load``: the original engine's simulator mix (five Python snippets, picked at random) sent open
loop — on schedule, whatever the completions — at one request per 160 ms times each
``--rate-multiplier``, for ``--duration`` seconds.

Each ``--server-config`` adds a server (a row) with its own traitlets config::

    python benchmarks/bench_rest.py latency \\
        --server-config "with pool" WarmPools.enabled=true \\
        --server-config "without pool" WarmPools.enabled=false

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from common import (
    MIXES,
    SIMULATOR_INTERVAL_S,
    docker_run_argv,
    language_image,
    leftover_containers,
    machine_summary,
    print_table,
    summarize,
)
from openloop import LoadRun, load_run, print_load_tables
from server import JupyterServer, merge_config, parse_config

HELLO = 'print("hello")\n'
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
CONFIG_ITEM = re.compile(r"^\w+(\.\w+)+=")  # Class.trait=value


# -- servers -------------------------------------------------------------------------------------
@dataclass
class ServerSpec:
    """One server row: a label and the traitlets config merged over the base config."""

    label: str
    config: dict


def server_specs(args) -> list[ServerSpec]:
    """The servers to measure: one per ``--server-config`` (default: one with the base config).

    A ``--server-config`` takes an optional label first, then ``Class.trait=value`` items and JSON
    config files."""
    base = {"ExecutionEngine": {"slots": args.slots, "queue_size": args.queue_size}}
    specs = []
    for items in args.server_config or [[]]:
        label = "REST"
        if items and not CONFIG_ITEM.match(items[0]) and not os.path.isfile(items[0]):
            label, items = items[0], items[1:]
        elif items:
            label = "REST " + " ".join(items)
        specs.append(ServerSpec(label, merge_config(base, parse_config(items))))
    return specs


def report_server(server: JupyterServer) -> None:
    """After a run, before shutdown: worker status, the containers the server has now (warm pool
    and any still running), its warnings and errors grouped by kind."""
    try:
        print(
            f"[{server.name}] /braindrill/workers: {json.dumps(server.get('/braindrill/workers'))}"
        )
    except (OSError, urllib.error.URLError, ValueError) as e:
        print(f"[{server.name}] /braindrill/workers failed: {e}")
    mine = leftover_containers(server.pid)
    print(f"[{server.name}] its labelled containers now (warm pool, running): {len(mine)}")
    for line in mine:
        print(f"    {line}")
    summary = server.log_summary()
    total = sum(n for n, _ in summary)
    print(f"[{server.name}] {total} warning/error log lines (log: {server.log_path}), by kind:")
    for n, line in summary[:20]:
        print(f"    {n:6d} x {line}")


def stop_server(server: JupyterServer) -> None:
    """Report, stop the server, then list the containers it left behind (there should be none)."""
    report_server(server)
    code = server.stop()
    left = leftover_containers(server.pid)
    print(f"[{server.name}] stopped (exit {code}); containers it left behind: {len(left)}")
    for line in left:
        print(f"    {line}")


# -- latency -------------------------------------------------------------------------------------
class HostInterpreter:
    """The bare interpreter on the host: ``python3 -c 'print("hello")'`` in a subprocess."""

    def __init__(self, python: str):
        self.label = f"bare interpreter on the host ({python} -c)"
        self.argv = [python, "-c", HELLO]

    def start(self):
        pass

    def run(self) -> tuple[str | None, None]:
        """Run once; returns what went wrong (or None) and the server's timings (none here)."""
        proc = subprocess.run(self.argv, capture_output=True, text=True, check=False)
        return (None if proc.stdout == "hello\n" else f"exit {proc.returncode}"), None

    def stop(self):
        pass


class DockerRun:
    """``docker run --rm -i`` of the server's image per execution, the code on stdin."""

    def __init__(self, image: str):
        if shutil.which("docker") is None:
            raise RuntimeError("the docker CLI is not installed: install it or use --no-docker-run")
        self.label = f"docker run --rm per execution ({image})"
        self.argv = docker_run_argv(image, ["python3", "-u", "-"])

    def start(self):
        pass

    def run(self) -> tuple[str | None, None]:
        proc = subprocess.run(self.argv, input=HELLO, capture_output=True, text=True, check=False)
        if proc.stdout == "hello\n":
            return None, None
        return f"exit {proc.returncode}: {proc.stderr.strip()[:200]}", None

    def stop(self):
        pass


class RestServer:
    """``POST /lang/python`` of a real Jupyter server, one request at a time."""

    def __init__(self, spec: ServerSpec, log_dir: str, timeout_s: float):
        self.label = f"{spec.label}: POST /lang/python"
        self.server = JupyterServer(spec.config, name=spec.label, log_dir=log_dir)
        self.timeout_s = timeout_s

    def start(self):
        self.server.start()

    def run(self) -> tuple[str | None, tuple[float, float] | None]:
        """Returns what went wrong (or None) and the server's (duration_ms, queued_ms)."""
        problem, result = self.server.execute("python", HELLO, "hello\n", self.timeout_s)
        return problem, result and (result["duration_ms"], result["queued_ms"])

    def stop(self):
        stop_server(self.server)


@dataclass
class Samples:
    """The timed runs of one target."""

    times: list = field(default_factory=list)  # ms, good runs
    timings: list = field(default_factory=list)  # the server's (duration_ms, queued_ms) of those
    errors: collections.Counter = field(default_factory=collections.Counter)


def time_once(target, samples: Samples) -> None:
    start = time.perf_counter()
    problem, timing = target.run()
    elapsed = (time.perf_counter() - start) * 1000
    if problem:
        samples.errors[problem] += 1
    else:
        samples.times.append(elapsed)
        samples.timings.append(timing)


def measure_blocks(targets, runs: int, warmup: int, gap_s: float) -> list[Samples]:
    """One block per target: a server runs only during its own block."""
    results = []
    for target in targets:
        print(f"latency: {runs} runs of {target.label} ...", flush=True)
        target.start()
        try:
            for _ in range(warmup):
                target.run()
            samples = Samples()
            for _ in range(runs):
                time.sleep(gap_s)
                time_once(target, samples)
        finally:
            target.stop()
        results.append(samples)
    return results


def measure_interleaved(targets, runs: int, warmup: int, gap_s: float) -> list[Samples]:
    """All targets up at once, one run of each in turn: drift in the machine's load hits every
    target alike. ``gap_s`` lets a server's background work (pool refill) finish before the next
    target's run."""
    results = [Samples() for _ in targets]
    started = []
    try:
        for target in targets:
            target.start()
            started.append(target)
        for _ in range(warmup):
            for target in targets:
                target.run()
        print(f"latency: {runs} rounds of {len(targets)} targets, interleaved ...", flush=True)
        for _ in range(runs):
            for target, samples in zip(targets, results, strict=True):
                time.sleep(gap_s)
                time_once(target, samples)
    finally:
        for target in started:
            target.stop()
    return results


def latency(args, specs: list[ServerSpec]) -> None:
    image = language_image("python")
    targets = [RestServer(spec, args.log_dir, args.request_timeout) for spec in specs]
    if not args.no_docker_run:
        targets.append(DockerRun(image))
    if not args.no_host:
        targets.append(HostInterpreter(args.host_python))
    measure = measure_interleaved if args.interleave else measure_blocks
    rows, breakdown = [], []
    results = measure(targets, args.runs, args.warmup, args.gap)
    for target, res in zip(targets, results, strict=True):
        s = summarize(res.times)
        failed = ", ".join(f"{n}x {what}" for what, n in res.errors.items()) or "0"
        rows.append(
            [target.label, s["n"], failed, s["p50"], s["p90"], s["p99"], s["mean"], s["max"]]
        )
        if res.times and res.timings[0] is not None:
            exec_ms = summarize(e for e, _ in res.timings)
            other_ms = summarize(o for _, o in res.timings)
            http_ms = summarize(t - e - o for t, (e, o) in zip(res.times, res.timings, strict=True))
            breakdown.append(
                [target.label, exec_ms["p50"], other_ms["p50"], http_ms["p50"], s["p50"]]
            )
    order = "interleaved" if args.interleave else "one block per target"
    print_table(
        f'print("hello") end to end, ms ({args.runs} runs each, {args.warmup} warm-up, {order}, '
        f"{args.gap:g} s between runs)",
        ["target", "ok", "failed", "p50", "p90", "p99", "mean", "max"],
        rows,
        note=f"Machine: {machine_summary()}",
    )
    if breakdown:
        print_table(
            "Where the time of a REST run goes (p50 of each part, ms)",
            ["server", "exec (duration_ms)", "engine outside exec (queued_ms)", "HTTP+rest", "e2e"],
            breakdown,
            note="exec: payload delivered → program exited. queued_ms: wait for a slot + "
            "container create/attach/start + remove. HTTP+rest: end to end minus both.",
        )


# -- load ----------------------------------------------------------------------------------------
def load(args, specs: list[ServerSpec]) -> None:
    mix = MIXES[args.mix]
    runs = []
    for spec in specs:
        server = JupyterServer(spec.config, name=spec.label, log_dir=args.log_dir).start()
        try:
            for mult in args.rate_multiplier:
                run = LoadRun(spec.label, mult / SIMULATOR_INTERVAL_S)
                print(
                    f"load: {spec.label}, {run.rate_hz:.2f} req/s ({mult:g}x the original rate) "
                    f"for {args.duration:g} s ...",
                    flush=True,
                )
                asyncio.run(
                    load_run(
                        server,
                        run,
                        mix,
                        args.duration,
                        seed=args.seed,
                        request_timeout_s=args.request_timeout,
                    )
                )
                runs.append((mult, run))
                time.sleep(args.pause)  # let the engine settle between rates
        finally:
            stop_server(server)
    print_load_tables(runs, args.mix, args.duration)


# -- command line --------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("benchmark", choices=["latency", "load", "all"])
    parser.add_argument(
        "--server-config",
        action="append",
        nargs="+",
        metavar="ITEM",
        help="one server row: an optional label, then Class.trait=value items and JSON config "
        "files; repeat for more rows (default: one server with the base config)",
    )
    parser.add_argument(
        "--slots",
        type=int,
        default=12,
        help="ExecutionEngine.slots of every server (default 12, measured best of 4/8/12/16 "
        "on a 2-core machine: a slot mostly waits on the engine's create/start/remove)",
    )
    parser.add_argument(
        "--queue-size", type=int, default=64, help="ExecutionEngine.queue_size (default 64)"
    )
    parser.add_argument("--runs", type=int, default=100, help="latency: timed runs per target")
    parser.add_argument("--warmup", type=int, default=3, help="latency: untimed runs first")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="latency: all targets up at once, one run of each in turn (default: one block each)",
    )
    parser.add_argument(
        "--gap", type=float, default=0.0, help="latency: seconds of idle before each timed run"
    )
    parser.add_argument("--no-docker-run", action="store_true", help="latency: skip docker run")
    parser.add_argument("--no-host", action="store_true", help="latency: skip the interpreter")
    parser.add_argument(
        "--host-python",
        default=sys.executable,
        help="latency: the host interpreter (default: this one, not a pyenv shim)",
    )
    parser.add_argument("--duration", type=float, default=60.0, help="load: seconds per rate")
    parser.add_argument(
        "--rate-multiplier",
        type=float,
        nargs="+",
        default=[1.0],
        help="load: multiples of the original rate of one request per 160 ms (e.g. 1 3 10)",
    )
    parser.add_argument("--mix", choices=sorted(MIXES), default="heavy", help="load: snippets")
    parser.add_argument("--seed", type=int, default=1, help="load: seed of the snippet choice")
    parser.add_argument("--pause", type=float, default=5.0, help="load: seconds between rates")
    parser.add_argument(
        "--request-timeout", type=float, default=120.0, help="HTTP timeout per request, seconds"
    )
    parser.add_argument("--log-dir", default="", help="server logs (default: a new temp dir)")
    args = parser.parse_args(argv)

    specs = server_specs(args)
    args.log_dir = args.log_dir or tempfile.mkdtemp(prefix="braindrill-bench-")
    print(f"Server logs in {args.log_dir}")
    print(f"Machine: {machine_summary()}")
    for spec in specs:
        print(f"server {spec.label!r}: {json.dumps(spec.config)}")
    if args.benchmark in ("latency", "all"):
        latency(args, specs)
    if args.benchmark in ("load", "all"):
        load(args, specs)
    others = leftover_containers()
    print(f"labelled containers on this engine now, any owner (other users too): {len(others)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
