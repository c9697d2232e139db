"""Nested sandboxes (slot runners) against containers, the raw Docker lifecycle and a bare process.

Two parts, each on the local engine and then on three extra engines (``tests/hosts.py``: dockerd
instances on this machine, mutual TLS on 127.0.0.2-4, the python image copied in):

1. **Closed loop**, ``print(1)``: ``--concurrency`` clients each send the next execution as soon as
   the last one answered, for ``--duration`` seconds per row. Rows: ``POST /lang/python`` with
   ``"sandbox": "nested"`` and with ``"container"``; the raw Docker lifecycle per execution
   (create with the sandbox's flags, start, wait, remove: through the API, from as many threads);
   a bare ``python3 -c 'print(1)'`` process per execution on this machine.
2. **Open loop**, the original simulator mix (``common.ORIGINAL_MIX``) at ``--rate-multiplier``
   times its rate of one request per 160 ms, for both kinds, and with a bare ``python3 -c``
   process per request on this machine (the floor: the mix's own CPU). Each row shows the
   machine's CPU per request and how busy its cores were.

    python benchmarks/bench_nested.py                       # 20 s per row
    python benchmarks/bench_nested.py --duration 10 --no-extra-engines

Needs root (the extra engines), the python runtime image and the project installed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import threading
import time
from asyncio.subprocess import DEVNULL, PIPE

import docker
from bench_hosts import prepare_images
from common import (
    MIXES,
    SIMULATOR_INTERVAL_S,
    language_image,
    machine_summary,
    print_table,
    start_daemons,
    summarize,
)
from openloop import TEXT, LoadRun, cpu_counters, load_run
from server import JupyterServer
from tornado.httpclient import AsyncHTTPClient

from braindrill_ext.engine.limits import LimitsPolicy
from braindrill_ext.execution import Limits
from braindrill_ext.languages import LanguageRegistry
from braindrill_ext.sandbox.isolation import ENVIRONMENT, SANDBOX_USER
from braindrill_ext.sandbox.sandbox import Sandbox

CODE = "print(1)"


def server_config(kind: str, hosts: list[dict] | None, slots: int) -> dict:
    engine = {"sandbox": kind, "slots": slots, "queue_size": 1000, "queue_timeout_s": 120}
    if hosts:
        engine.update(hosts=[{**h, "sandbox": kind, "slots": slots} for h in hosts])
        engine["image_source_url"] = "none"
    return {"ExecutionEngine": engine}


async def closed_loop_rest(server: JupyterServer, concurrency: int, duration_s: float):
    client = AsyncHTTPClient(force_instance=True, max_clients=concurrency)
    latencies, statuses = [], {}
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_s

    async def worker():
        while loop.time() < end:
            start = loop.time()
            response = await client.fetch(
                f"{server.url}/lang/python",
                method="POST",
                body=CODE.encode(),
                headers={**server.headers, **TEXT},
                raise_error=False,
                request_timeout=120,
            )
            status = "ok" if response.code == 200 and b'"ok"' in response.body else response.code
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append((loop.time() - start) * 1000)

    started = loop.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = loop.time() - started
    client.close()
    return latencies, wall, statuses


def closed_loop_threads(one, concurrency: int, duration_s: float):
    """``one(i)`` per execution from ``concurrency`` threads (thread ``i``)."""
    latencies, statuses, lock = [], {}, threading.Lock()
    end = time.monotonic() + duration_s

    def worker(i):
        while time.monotonic() < end:
            start = time.monotonic()
            status = one(i)
            with lock:
                latencies.append((time.monotonic() - start) * 1000)
                statuses[status] = statuses.get(status, 0) + 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.monotonic() - started, statuses


def raw_docker(clients, image: str):
    """One execution the way the engine's container path makes its container, minus the engine:
    create (the sandbox's host config), start, wait, remove."""
    lang = LanguageRegistry.from_kernelspecs().get("python")
    limits: Limits = LimitsPolicy().defaults(lang)

    class _Host:  # what Sandbox reads for its host config
        runtime, log = "", None

    config = Sandbox(_Host(), lang, image, limits, {})._host_config()

    def one(i):
        api = clients[i % len(clients)].api
        cid = api.create_container(
            image,
            entrypoint=[],
            command=["python3", "-c", CODE],
            user=SANDBOX_USER,
            working_dir="/work",
            environment=ENVIRONMENT,
            network_disabled=True,
            labels={"braindrill-bench": "raw"},
            host_config=api.create_host_config(**config),
        )["Id"]
        try:
            api.start(cid)
            code = api.wait(cid, timeout=60)["StatusCode"]
        finally:
            api.remove_container(cid, force=True)
        return "ok" if code == 0 else f"exit {code}"

    return one


def bare_process(i):
    import subprocess

    done = subprocess.run(["python3", "-c", CODE], capture_output=True)
    return "ok" if done.returncode == 0 and done.stdout == b"1\n" else "error"


def closed_loop_rows(label: str, hosts, clients, image, args) -> list[list]:
    rows = []
    for kind in ("nested", "container"):
        config = server_config(kind, hosts, args.slots)
        with JupyterServer(config, name=f"{kind} {label}") as server:
            # Warm up: the pools (runners, warm containers) fill as a user's would have.
            asyncio.run(closed_loop_rest(server, args.concurrency, 5))
            lat, wall, st = asyncio.run(closed_loop_rest(server, args.concurrency, args.duration))
        rows.append([f'"{kind}" (POST /lang/python)', label, *_figures(lat, wall, st)])
    lat, wall, st = closed_loop_threads(raw_docker(clients, image), args.concurrency, args.duration)
    rows.append(["raw Docker lifecycle (API)", label, *_figures(lat, wall, st)])
    lat, wall, st = closed_loop_threads(bare_process, args.concurrency, args.duration)
    rows.append(["bare python3 process", "this machine", *_figures(lat, wall, st)])
    return rows


def _figures(latencies, wall, statuses) -> list:
    s = summarize(latencies)
    other = {k: v for k, v in statuses.items() if k != "ok"}
    return [len(latencies) / wall, s["p50"], s["p99"], statuses.get("ok", 0), other or 0]


# answered: ok or output_limit (a fifth of the mix floods)
SIM_COLUMNS = "kind where rate sent answered other p50 p99 max CPU/req_ms cores_busy".split()


def simulator_rows(label: str, hosts, args) -> list[list]:
    rows = []
    for kind in ("nested", "container"):
        with JupyterServer(server_config(kind, hosts, args.slots), name=f"sim {kind}") as server:
            asyncio.run(closed_loop_rest(server, args.concurrency, 5))
            for mult in args.rate_multiplier:
                run = LoadRun(f"{kind} {label}", mult / SIMULATOR_INTERVAL_S)
                print(f"simulator: {kind} on {label} at {mult:g}x ...", flush=True)
                asyncio.run(load_run(server, run, MIXES["original"], args.duration))
                rows.append(_sim_row(f'"{kind}"', label, mult, run))
    return rows


def bare_simulator_rows(args) -> list[list]:
    """The floor: each request of the mix as a bare ``python3 -c`` process on this machine, its
    output read up to the engine's cap (``LimitsPolicy.output_bytes``) and then killed, as the
    engine stops a flood."""
    rows = []
    for mult in args.rate_multiplier:
        run = LoadRun("bare", mult / SIMULATOR_INTERVAL_S)
        print(f"simulator: bare python3 at {mult:g}x ...", flush=True)
        asyncio.run(bare_load_run(run, MIXES["original"], args.duration))
        rows.append(_sim_row("bare python3", "this machine", mult, run))
    return rows


async def bare_load_run(run: LoadRun, mix: dict, duration_s: float, seed: int = 1) -> None:
    """``openloop.load_run``'s schedule (same seed, so the same snippets) with bare processes."""
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    names = sorted(mix)
    cap = LimitsPolicy().output_bytes

    async def one(name: str, scheduled: float):
        proc = await asyncio.create_subprocess_exec(
            "python3", "-c", mix[name], stdout=PIPE, stderr=DEVNULL
        )
        read = 0
        while read <= cap:
            chunk = await proc.stdout.read(1 << 16)
            if not chunk:
                break
            read += len(chunk)
        if read > cap:
            proc.kill()
        code = await proc.wait()
        run.outcomes["output_limit" if read > cap else "ok" if code == 0 else "error"] += 1
        run.latencies.append((loop.time() - scheduled) * 1000)

    interval = 1 / run.rate_hz
    before = cpu_counters(os.getpid())
    start = loop.time()
    tasks = []
    while run.sent * interval < duration_s:
        scheduled = start + run.sent * interval
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        tasks.append(asyncio.ensure_future(one(rng.choice(names), scheduled)))
        run.sent += 1
    await asyncio.gather(*tasks)
    run.cpu = {"machine": cpu_counters(os.getpid())["machine"] - before["machine"]}
    run.cpu["wall"] = loop.time() - start


def _sim_row(what: str, where: str, mult: float, run: LoadRun) -> list:
    """A simulator row; the machine's CPU per request and how busy its cores were tell whether
    the rate fits this machine at all."""
    s = summarize(run.latencies)
    others = {k: v for k, v in run.outcomes.items() if k not in ("ok", "output_limit")}
    answered = sum(run.outcomes.values())
    cpu_ms = run.cpu["machine"] * 1000 / max(1, answered)
    busy = 100 * run.cpu["machine"] / run.cpu["wall"] / (os.cpu_count() or 1)
    return [
        what, where, f"{mult:g}x ({run.rate_hz:.2f}/s)", run.sent,
        run.outcomes.get("ok", 0) + run.outcomes.get("output_limit", 0), others or 0,
        s["p50"], s["p99"], s["max"], cpu_ms, f"{busy:.0f}%",
    ]  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20, help="seconds per row")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--slots", type=int, default=8, help="slots per worker host")
    parser.add_argument("--rate-multiplier", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--no-extra-engines", action="store_true")
    args = parser.parse_args(argv)
    image = language_image("python")
    closed, sim = [], []
    local = docker.from_env(timeout=120)
    try:
        closed += closed_loop_rows("local engine", None, [local], image, args)
        sim += bare_simulator_rows(args)
        sim += simulator_rows("local engine", None, args)
    finally:
        local.close()
    if not args.no_extra_engines:
        daemons, stop = start_daemons()
        try:
            prepare_images(daemons, image)
            clients = [d.client(timeout=120) for d in daemons.daemons]
            hosts = daemons.specs(slots=args.slots)
            slots = args.slots
            args.slots = max(1, slots // len(hosts))  # the same slots in all
            closed += closed_loop_rows("3 extra engines", hosts, clients, image, args)
            sim += simulator_rows("3 extra engines", hosts, args)
            args.slots = slots
            for c in clients:
                c.close()
        finally:
            stop()
    note = f"Machine: {machine_summary()}. Extra engines share its CPUs."
    print_table(
        f"print(1), closed loop, {args.concurrency} clients, {args.duration:g} s per row (ms)",
        ["what", "where", "executions/s", "p50", "p99", "ok", "other"],
        closed,
        note=note,
    )
    print_table(
        f"Original simulator mix, open loop, {args.duration:g} s per rate (latency from the "
        "scheduled send time, ms)",
        [c.replace("_", " ") for c in SIM_COLUMNS],
        sim,
        note=note,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
