"""Worker-host benchmarks: the simulator mix on 1, 2 and 3 worker hosts in one run, and how fast
a lost host leaves scheduling and a returning one gets work again.

The worker hosts are extra ``dockerd`` instances on this machine (``tests/hosts.py``: own data
roots, mutual TLS on 127.0.0.2-4:2376), started for the run and removed at the end, with the python
image copied in from the local engine beforehand. They all share this machine's CPUs, so more hosts
add slots, not cores: on a 2-core machine the figures show the scheduling, not a real cluster's
scaling.

    python benchmarks/bench_hosts.py                 # 60 s per host count, as the original
    python benchmarks/bench_hosts.py --duration 20   # shorter

Needs root (it starts dockerd), the python runtime image on the local engine, and the project
installed (``pip install -e .[test]``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import docker
from common import (
    MIXES,
    SIMULATOR_INTERVAL_S,
    language_image,
    machine_summary,
    print_table,
    start_daemons,
    summarize,
)
from openloop import LoadRun, load_run, print_load_tables
from server import JupyterServer

from braindrill_ext.hosts.images import copy_image


def prepare_images(daemons, image: str) -> None:
    local = docker.from_env(timeout=120)
    try:
        for d in daemons:
            client = d.client(timeout=600)
            try:
                start = time.monotonic()
                copy_image(local, client, image)
                print(f"copied {image} to {d.name} in {time.monotonic() - start:.1f} s", flush=True)
            finally:
                client.close()
    finally:
        local.close()


def server_config(daemons, n: int, args) -> dict:
    return {
        "ExecutionEngine": {
            "hosts": daemons.specs(slots=args.slots)[:n],
            "health_interval_s": args.health_interval,
            "ping_timeout_s": args.ping_timeout,
            "queue_size": 1000,
            "queue_timeout_s": 120,
            "image_source_url": "none",
        }
    }


def throughput(daemons, args) -> None:
    mix = MIXES[args.mix]
    rows, runs = [], []
    for n in args.hosts:
        with JupyterServer(server_config(daemons, n, args), name=f"{n} hosts") as server:
            for mult in args.rate_multiplier:
                run = LoadRun(f"{n} host(s) x {args.slots} slots", mult / SIMULATOR_INTERVAL_S)
                print(f"load: {run.label} at {mult:g}x for {args.duration:g} s ...", flush=True)
                before = {
                    w["name"]: w["completed"] for w in server.get("/braindrill/workers")["workers"]
                }
                started = time.monotonic()
                asyncio.run(
                    load_run(
                        server, run, mix, args.duration,
                        seed=args.seed, request_timeout_s=args.request_timeout,
                    )
                )  # fmt: skip
                wall = time.monotonic() - started
                workers = server.get("/braindrill/workers")["workers"]
                runs.append((mult, run))
                s = summarize(run.latencies)
                per_host = ", ".join(
                    f"{w['name']}: {w['completed'] - before[w['name']]}" for w in workers
                )
                others = {k: v for k, v in run.outcomes.items() if k != "ok"}
                rows.append(
                    [
                        run.label,
                        f"{mult:g}x ({run.rate_hz:.2f}/s)",
                        run.sent,
                        run.outcomes.get("ok", 0),
                        ", ".join(f"{k}: {v}" for k, v in sorted(others.items())) or "0",
                        len(run.latencies) / wall,
                        s["p50"],
                        s["p99"],
                        s["max"],
                        per_host,
                    ]
                )
    print_table(
        f"Simulator mix '{args.mix}', {args.duration:g} s per rate "
        "(latency from the scheduled send time, ms)",
        [
            "hosts", "rate", "sent", "ok", "other", "answers/s", "p50", "p99", "max",
            "executions per host",
        ],
        rows,
        note=f"All worker hosts are dockerd instances on this one machine and share its CPUs. "
        f"Machine: {machine_summary()}",
    )  # fmt: skip
    print_load_tables(runs, args.mix, args.duration)


async def _steady(server, stop: asyncio.Event, seen: list, interval: float):
    """Send print('x') every ``interval`` s until ``stop``; record (answer time, worker)."""
    from tornado.httpclient import AsyncHTTPClient

    client = AsyncHTTPClient(force_instance=True, max_clients=1000)
    loop = asyncio.get_running_loop()

    async def one():
        response = await client.fetch(
            server.url + "/lang/python",
            method="POST",
            body=b"print('x')",
            headers=server.headers,
            raise_error=False,
            request_timeout=120,
        )
        if response.code == 200:
            seen.append((loop.time(), json.loads(response.body)["worker"]))

    tasks = []
    while not stop.is_set():
        tasks.append(asyncio.ensure_future(one()))
        await asyncio.sleep(interval)
    await asyncio.gather(*tasks)
    client.close()


async def _failover_once(server, victim, args) -> tuple[float, float, float, float]:
    loop = asyncio.get_running_loop()
    stop, seen = asyncio.Event(), []
    steady = asyncio.ensure_future(_steady(server, stop, seen, 0.1))

    async def state(key: str) -> bool:
        workers = await asyncio.to_thread(server.get, "/braindrill/workers")
        return {w["name"]: w[key] for w in workers["workers"]}[victim.name]

    async def healthy() -> bool:
        return await state("healthy")

    async def unhealthy() -> bool:
        return not await healthy()

    async def failed() -> bool:
        return await state("failed")

    async def victim_served() -> bool:
        return any(t > back_at and w == victim.name for t, w in seen)

    await asyncio.sleep(2)
    lost_at = loop.time()
    victim.freeze()
    try:
        await _until(unhealthy, 60)
        removed = loop.time() - lost_at
        await _until(failed, 60)
        declared = loop.time() - lost_at
        await asyncio.sleep(1)
    finally:
        victim.thaw()
    back_at = loop.time()
    await _until(healthy, 60)
    healthy_again = loop.time() - back_at
    await _until(victim_served, 60)
    first = min((t for t, w in seen if t > back_at and w == victim.name), default=float("nan"))
    stop.set()
    await steady
    return removed, declared, healthy_again, first - back_at


async def _until(predicate, timeout_s: float) -> None:
    """Poll ``predicate`` every 20 ms until it is true or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await predicate() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.02)


def failover(daemons, args) -> None:
    rows = []
    with JupyterServer(server_config(daemons, 3, args), name="failover") as server:
        for i in range(args.failovers):
            victim = daemons[i % 3]
            times = asyncio.run(_failover_once(server, victim, args))
            rows.append([f"{i + 1} ({victim.name})", *times])
    print_table(
        "Host loss and return (s): the dockerd is SIGSTOPped (hangs), then SIGCONTed",
        [
            "round",
            "loss → out of scheduling",
            "loss → failed (runs lost)",
            "return → healthy",
            "return → first execution",
        ],
        rows,
        note=f"health_interval_s={args.health_interval:g}, ping_timeout_s={args.ping_timeout:g}; "
        "a steady print('x') every 100 ms across 3 hosts. Out of scheduling (first missed ping) "
        "and failed (lost_after_pings missed in a row) are seen by polling /braindrill/workers "
        "every 20 ms.",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of load per row")
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 2, 3], help="host counts")
    parser.add_argument("--slots", type=int, default=2, help="slots per host (default 2)")
    parser.add_argument("--mix", choices=sorted(MIXES), default="heavy")
    parser.add_argument(
        "--rate-multiplier",
        type=float,
        nargs="+",
        default=[1.0],
        help="multiples of the original rate of one request per 160 ms, one row each",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--request-timeout", type=float, default=300)
    parser.add_argument("--health-interval", type=float, default=1.0)
    parser.add_argument("--ping-timeout", type=float, default=1.5)
    parser.add_argument("--failovers", type=int, default=3, help="loss/return rounds")
    args = parser.parse_args(argv)
    image = language_image("python")
    daemons, stop = start_daemons()
    try:
        prepare_images(daemons, image)
        throughput(daemons, args)
        if args.failovers:
            failover(daemons, args)
    finally:
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
