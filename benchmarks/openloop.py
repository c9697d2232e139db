"""Open-loop load against a real Braindrill server: requests go out on schedule whatever the
completions, so a slow server cannot slow the client down and hide its own queueing. Latency is
measured from each request's scheduled send time. Used by ``bench_rest.py load``; other benchmarks
may reuse ``load_run`` and ``print_load_tables``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
from dataclasses import dataclass, field

from common import machine_cpu_s, machine_summary, print_table, summarize
from server import JupyterServer
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

TEXT = {"Content-Type": "text/plain; charset=utf-8"}


@dataclass
class LoadRun:
    """What one open-loop run saw."""

    label: str
    rate_hz: float
    sent: int = 0
    outcomes: collections.Counter = field(default_factory=collections.Counter)
    latencies: list = field(default_factory=list)  # ms, scheduled send → response, HTTP 200 only
    per_snippet: dict = field(default_factory=lambda: collections.defaultdict(list))
    engine: list = field(default_factory=list)  # (exec ms, outside-exec ms) per HTTP 200
    max_in_flight: int = 0
    max_send_lag_ms: float = 0.0
    drain_s: float = 0.0
    cpu: dict = field(default_factory=dict)  # CPU seconds over the run, by consumer (cpu_split)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The parent cgroup of Docker's containers (cgroupfs driver, v1 and v2): its counter keeps the CPU
# of containers already removed, so its difference over a run is all the user code's CPU.
CONTAINER_CPU = {
    "/sys/fs/cgroup/cpuacct/docker/cpuacct.usage": lambda text: int(text) / 1e9,
    "/sys/fs/cgroup/docker/cpu.stat": lambda text: int(text.split()[1]) / 1e6,  # usage_usec
}


def cpu_counters(server_pid: int) -> dict:
    """Cumulative CPU seconds: the whole machine (busy), Docker's containers, the server process
    (with its reaped children) and this process (the load client)."""
    counters = {"machine": machine_cpu_s()}
    for path, parse in CONTAINER_CPU.items():
        if os.path.exists(path):
            with open(path) as f:
                counters["containers"] = parse(f.read())
            break
    counters["server"] = _process_cpu(server_pid)
    counters["client"] = sum(os.times()[:4])
    # Inside the engine's share: its daemons (every dockerd and containerd of the machine), and
    # what the init reaped (the per-container containerd shims and storage-driver processes, such
    # as fuse-overlayfs mounts, are orphans that the init reaps when they exit).
    counters["dockerd"] = counters["containerd"] = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                name = f.read().strip()
            if name in ("dockerd", "containerd"):
                counters[name] += _process_cpu(pid)
        except (OSError, ValueError):
            continue  # gone meanwhile
    counters["reaped by init"] = _process_cpu(1, children_only=True)
    return counters


def _process_cpu(pid, children_only: bool = False) -> float:
    """CPU seconds of a process: user + system time, plus its reaped children's."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return sum(int(x) for x in fields[13 if children_only else 11 : 15]) / CLOCK_TICKS


ENGINE_PARTS = ("dockerd", "containerd", "shims + storage driver", "kernel + other")


def cpu_split(before: dict, after: dict) -> dict:
    """CPU seconds spent between two ``cpu_counters``, by consumer; 'engine' is the rest of the
    machine: the Docker Engine (dockerd, containerd, shims, runc, storage driver) and anything else
    running."""
    spent = {k: after[k] - before[k] for k in after if k in before}
    spent["engine"] = spent["machine"] - sum(
        spent.get(k, 0) for k in ("containers", "server", "client")
    )
    if "containers" in spent:
        # The init's reaped children include, through each shim, the container processes.
        spent["shims + storage driver"] = spent.pop("reaped by init") - spent["containers"]
        spent["kernel + other"] = spent["engine"] - sum(
            spent[k] for k in ("dockerd", "containerd", "shims + storage driver")
        )
    return spent


async def load_run(
    server: JupyterServer,
    run: LoadRun,
    mix: dict,
    duration_s: float,
    *,
    language: str = "python",
    seed: int = 1,
    request_timeout_s: float = 120.0,
) -> LoadRun:
    """Send snippets of ``mix`` (picked at random with ``seed``) to ``POST /lang/<language>`` at
    ``run.rate_hz`` on schedule for ``duration_s``, then wait for every answer; fills ``run``."""
    client = AsyncHTTPClient(
        force_instance=True,
        max_clients=100_000,  # never queue in the client: this is an open loop
        defaults={"connect_timeout": 10, "request_timeout": request_timeout_s},
    )
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    names = sorted(mix)
    in_flight = 0

    async def one(name: str, scheduled: float):
        nonlocal in_flight
        in_flight += 1
        run.max_in_flight = max(run.max_in_flight, in_flight)
        try:
            response = await client.fetch(
                f"{server.url}/lang/{language}",
                method="POST",
                body=mix[name].encode(),
                headers={**server.headers, **TEXT},
                raise_error=False,
            )
        except HTTPClientError as e:  # no answer in time (599): raised even with raise_error off
            run.outcomes[f"HTTP {e.code} {type(e).__name__}: {e}"] += 1
            return
        finally:
            in_flight -= 1
        elapsed = (loop.time() - scheduled) * 1000
        if response.code != 200:
            reason = f"HTTP {response.code}"
            if response.code == 599:
                reason += f" {type(response.error).__name__}: {response.error}"
            run.outcomes[reason] += 1
            return
        result = json.loads(response.body)
        run.outcomes[result["status"]] += 1
        run.latencies.append(elapsed)
        run.per_snippet[name].append((elapsed, result["status"]))
        run.engine.append((result["duration_ms"], result["queued_ms"]))

    interval = 1 / run.rate_hz
    counters = cpu_counters(server.pid)
    start = loop.time()
    tasks = []
    while run.sent * interval < duration_s:
        scheduled = start + run.sent * interval
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        run.max_send_lag_ms = max(run.max_send_lag_ms, (loop.time() - scheduled) * 1000)
        tasks.append(asyncio.ensure_future(one(rng.choice(names), scheduled)))
        run.sent += 1
    sent_at = loop.time()
    await asyncio.gather(*tasks)
    run.drain_s = loop.time() - sent_at
    run.cpu = cpu_split(counters, cpu_counters(server.pid))
    run.cpu["wall"] = loop.time() - start
    client.close()
    return run


def print_load_tables(runs: list[tuple[float, LoadRun]], mix_name: str, duration_s: float) -> None:
    """Print the summary, per-snippet and server-side tables of ``(rate multiplier, LoadRun)``."""
    rows, snippet_rows, engine_rows, cpu_rows = [], [], [], []
    for mult, run in runs:
        s = summarize(run.latencies)
        http_ok = len(run.latencies)
        statuses = {k: v for k, v in run.outcomes.items() if not k.startswith("HTTP")}
        http_errors = {k: v for k, v in run.outcomes.items() if k.startswith("HTTP")}
        name = f"{run.label} @ {mult:g}x ({run.rate_hz:.2f}/s)"
        rows.append(
            [
                name,
                run.sent,
                http_ok,
                statuses.get("ok", 0),
                _counts({k: v for k, v in statuses.items() if k != "ok"}),
                _counts(http_errors),
                s["mean"],
                s["p50"],
                s["p90"],
                s["p99"],
                s["max"],
                run.max_in_flight,
                run.max_send_lag_ms,
            ]
        )
        for snippet in sorted(run.per_snippet):
            lat = run.per_snippet[snippet]
            ss = summarize(t for t, _ in lat)
            counts = collections.Counter(st for _, st in lat)
            snippet_rows.append([name, snippet, ss["n"], _counts(counts), ss["p50"], ss["p99"]])
        e, o = summarize(x for x, _ in run.engine), summarize(y for _, y in run.engine)
        engine_rows.append([name, e["p50"], e["p99"], o["p50"], o["p99"], run.drain_s])
        cpu, done = run.cpu, max(http_ok, 1)
        cpu_rows.append(
            [name, cpu["machine"] / cpu["wall"]]
            + [
                cpu[k] * 1000 / done if k in cpu else "n/a"
                for k in ("machine", "containers", "engine", *ENGINE_PARTS, "server", "client")
            ]
        )
    print_table(
        f"Simulator mix '{mix_name}', open loop, {duration_s:g} s per rate "
        "(latency in ms over HTTP 200 answers, from the scheduled send time)",
        [
            "server @ rate",
            "sent",
            "completed (HTTP 200)",
            "ok",
            "non-ok statuses",
            "HTTP errors",
            "avg",
            "p50",
            "p90",
            "p99",
            "max",
            "max in flight",
            "max send lag",
        ],
        rows,
        note=f"Machine: {machine_summary()}",
    )
    print_table(
        "Per snippet (ms)",
        ["server @ rate", "snippet", "n", "statuses", "p50", "p99"],
        snippet_rows,
    )
    print_table(
        "Where the time goes under load (server-reported, ms)",
        ["server @ rate", "exec p50", "exec p99", "queued_ms p50", "queued_ms p99", "drain s"],
        engine_rows,
        note="exec = duration_ms (payload delivered → program exited); queued_ms = wait for a "
        "slot + container create/attach/start + remove; drain = time after the last send until "
        "the last answer.",
    )
    print_table(
        "Where the CPU goes under load (CPU ms per completed request, from /proc and cgroups)",
        [
            "server @ rate",
            "busy cores (avg)",
            "all",
            "user code (containers)",
            "Docker Engine + rest",
            *(f"of which {part}" for part in ENGINE_PARTS),
            "Braindrill server",
            "load client",
        ],
        cpu_rows,
        note=f"{os.cpu_count()} cores. 'Docker Engine + rest' is the machine's busy time minus "
        "user code, server and client: dockerd, containerd, the per-container shims, runc, the "
        "storage driver, the kernel's work for them (and anything else that ran). 'shims + "
        "storage driver': what the init reaped (the per-container shims, with their containers' "
        "processes, and fuse-overlayfs mounts: orphans) minus the user code. Over the run from "
        "the first send to the last answer.",
    )


def _counts(counter: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items())) or "0"
