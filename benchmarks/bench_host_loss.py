"""A worker host killed under load: the original simulator mix at 1x across three worker hosts,
then one host's dockerd (and its containerd) SIGKILLed mid-run, and later started again.

    python benchmarks/bench_host_loss.py             # --duration 60 --kill-after 20

The same load first runs with no loss, as the baseline of the same run. Every request must get an
answer: ``ok`` (or the program's own status) on the hosts that live, ``worker_lost`` for those
that ran on the killed one; "hung" counts requests with no answer within their client-side bound
(the request's timeout + 10 s, so that the script always ends). Measured from the kill: the host out
of scheduling and declared failed, the queue drained; from the restart: the host healthy again and
its leftover containers (the killed runs') removed by the reaper.

Like ``bench_hosts.py`` it starts three extra ``dockerd`` (``tests/hosts.py``: own data roots and
bridges, mutual TLS on 127.0.0.2-4:2376) and needs root.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench_hosts import prepare_images, server_config
from common import (
    MIXES,
    SIMULATOR_INTERVAL_S,
    language_image,
    machine_summary,
    print_table,
    start_daemons,
    summarize,
)
from openloop import LoadRun, load_run
from server import JupyterServer

from braindrill_ext.sandbox.protocol import OWNER

POLL_S = 0.1


def _workers(server) -> dict:
    state = server.get("/braindrill/workers")
    return {"queued": state["queued"], **{w["name"]: w for w in state["workers"]}}


async def _watch(server, victim: str, since: float, marks: dict, stop: asyncio.Event):
    """Poll /braindrill/workers; note when ``victim`` leaves scheduling and is declared failed."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        state = await asyncio.to_thread(_workers, server)
        if "out of scheduling" not in marks and not state[victim]["healthy"]:
            marks["out of scheduling"] = loop.time() - since
        if "failed" not in marks and state[victim]["failed"]:
            marks["failed"] = loop.time() - since
        await asyncio.sleep(POLL_S)


async def _run(server, daemons, args, kill: bool) -> tuple[LoadRun, dict]:
    loop = asyncio.get_running_loop()
    label = "SIGKILL one host" if kill else "no loss (baseline)"
    run = LoadRun(label, args.rate_multiplier / SIMULATOR_INTERVAL_S)
    load = asyncio.ensure_future(
        load_run(
            server, run, MIXES[args.mix], args.duration,
            seed=args.seed, request_timeout_s=args.request_timeout,
        )
    )  # fmt: skip
    marks: dict = {}
    if not kill:
        await load
        return run, marks
    victim = daemons[args.victim]
    await asyncio.sleep(args.kill_after)
    killed_at = loop.time()
    running = _workers(server)[victim.name]["running"]
    await asyncio.to_thread(victim.kill)
    marks["running on it when killed"] = running
    stop = asyncio.Event()
    watch = asyncio.ensure_future(_watch(server, victim.name, killed_at, marks, stop))
    await load
    marks["load sent → all answered"] = run.drain_s
    while True:  # the queue drained and the living hosts idle
        state = await asyncio.to_thread(_workers, server)
        alive = [w for name, w in state.items() if name not in ("queued", victim.name)]
        if state["queued"] == 0 and all(w["running"] == 0 for w in alive):
            marks["kill → queue drained"] = loop.time() - killed_at
            break
        await asyncio.sleep(POLL_S)
    stop.set()
    await watch
    # Start it again: it comes back with the killed runs' containers.
    restarted_at = loop.time()
    await asyncio.to_thread(victim.start)
    marks["dockerd restart"] = loop.time() - restarted_at
    client = victim.client()
    try:
        owner = f":{server.pid}:"

        def leftovers() -> int:
            found = client.api.containers(all=True, filters={"label": OWNER})
            return sum(owner in c["Labels"][OWNER] for c in found)

        marks["leftovers after restart"] = await asyncio.to_thread(leftovers)
        deadline = loop.time() + args.recover_timeout
        while loop.time() < deadline:
            state = await asyncio.to_thread(_workers, server)
            if "restart → healthy" not in marks and state[victim.name]["healthy"]:
                marks["restart → healthy"] = loop.time() - restarted_at
            if "restart → healthy" in marks and await asyncio.to_thread(leftovers) == 0:
                marks["restart → leftovers removed"] = loop.time() - restarted_at
                break
            await asyncio.sleep(POLL_S)
        marks["leftovers at the end"] = await asyncio.to_thread(leftovers)
    finally:
        client.close()
    return run, marks


def _row(run: LoadRun, args) -> list:
    hung = sum(v for k, v in run.outcomes.items() if k.startswith("HTTP 599"))
    lost = run.outcomes.get("worker_lost", 0)
    other = {
        k: v
        for k, v in run.outcomes.items()
        if k not in ("ok", "error", "worker_lost") and not k.startswith("HTTP 599")
    }
    s = summarize(run.latencies)
    return [
        run.label,
        run.sent,
        run.sent - hung,
        run.outcomes.get("ok", 0) + run.outcomes.get("error", 0),
        lost,
        hung,
        ", ".join(f"{k}: {v}" for k, v in sorted(other.items())) or "0",
        s["p50"],
        s["p99"],
        s["max"],
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of load per run")
    parser.add_argument("--kill-after", type=float, default=20, help="seconds into the load")
    parser.add_argument("--victim", type=int, default=0, help="which host (0-2) is killed")
    parser.add_argument("--slots", type=int, default=2, help="slots per host (default 2)")
    parser.add_argument("--mix", choices=sorted(MIXES), default="original")
    parser.add_argument("--rate-multiplier", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--request-timeout", type=float, default=40, help="client-side bound of one request, s"
    )
    parser.add_argument("--health-interval", type=float, default=1.0)
    parser.add_argument("--ping-timeout", type=float, default=1.5)
    parser.add_argument("--recover-timeout", type=float, default=120)
    args = parser.parse_args(argv)
    print(machine_summary())
    daemons, stop = start_daemons()
    try:
        prepare_images(daemons, language_image("python"))
        rows, marks = [], {}
        for kill in (False, True):
            with JupyterServer(server_config(daemons, 3, args), name="host-loss") as server:
                run, seen = asyncio.run(_run(server, daemons, args, kill))
                rows.append(_row(run, args))
                marks.update(seen)
    finally:
        stop()
    print_table(
        f"Simulator mix '{args.mix}' at {args.rate_multiplier:g}x on 3 hosts x {args.slots} slots, "
        f"{args.duration:g} s (latency from the scheduled send time, ms)",
        [
            "run", "sent", "answered", "ok/error", "worker_lost", "hung", "other",
            "p50", "p99", "max",
        ],
        rows,
        note=f"Host {daemons[args.victim].name} SIGKILLed {args.kill_after:g} s into the second "
        f"run; hung = no answer within {args.request_timeout:g} s (a request's own timeout is "
        "10 s). All hosts are dockerd instances on this one machine.",
    )  # fmt: skip
    print_table(
        "The lost host: from the kill, and from the restart (s, or counts)",
        ["what", "value"],
        [[k, v] for k, v in marks.items()],
        note=f"Seen by polling /braindrill/workers every {POLL_S * 1000:.0f} ms; leftovers are the "
        "killed runs' containers (labelled with the server's owner) on the restarted engine.",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
