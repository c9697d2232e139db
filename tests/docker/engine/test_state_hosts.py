"""Kernel state (issue 13) across worker hosts: a kernel whose consecutive cells run on two hosts
(real extra Docker Engines, ``worker_daemons``) — each cell sees every earlier cell's variable and
file, whichever host ran it, and when the kernel is deleted its state is dropped from the server and
no container is left on any host. (The state on one engine: test_state.py.)"""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from tests.helpers import eventually, stream_text, workers, ws_execute


@pytest.fixture
def braindrill_config(worker_daemons):
    """The Jupyter server's engine: two worker hosts of one slot each, no warm containers."""
    return {
        "ExecutionEngine": {"hosts": [d.spec(slots=1) for d in worker_daemons[:2]]},
        "WarmPools": {"enabled": False},
    }


FIRST = "n = 1\nopen('trail.txt', 'w').write('1')\nprint(n, open('trail.txt').read())"
NEXT = "n += 1\nopen('trail.txt', 'a').write(f',{n}')\nprint(n, open('trail.txt').read())"


async def completed(jp_fetch) -> dict[str, int]:
    return {name: w["completed"] for name, w in (await workers(jp_fetch)).items()}


async def host_that_ran(jp_fetch, before: dict[str, int]) -> str:
    """The one host whose completed count grew past ``before`` (a container is counted just
    after its result)."""

    async def grown():
        now = await completed(jp_fetch)
        return [name for name in now if now[name] > before[name]]

    hosts = await eventually(grown)
    assert len(hosts) == 1, hosts
    assert (await completed(jp_fetch))[hosts[0]] == before[hosts[0]] + 1
    return hosts[0]


async def test_the_state_follows_the_kernel_to_another_host(
    jp_fetch, jp_ws_fetch, jp_serverapp, worker_daemons
):
    engine = jp_serverapp.web_app.settings["braindrill_engine"]
    before = engine.states.used
    body = json.dumps({"name": "braindrill-python"})
    kernel_id = json.loads((await jp_fetch("api", "kernels", method="POST", body=body)).body)["id"]
    ws = await jp_ws_fetch("api", "kernels", kernel_id, "channels")
    hosts = []
    try:
        # Until a cell ran on another host than the cell before it (round-robin: the second).
        for n in range(1, 7):
            counts = await completed(jp_fetch)
            reply, messages = await ws_execute(ws, FIRST if n == 1 else NEXT)
            assert reply["status"] == "ok", reply
            # It saw every earlier cell's variable and file.
            assert stream_text(messages) == f"{n} {','.join(str(i) for i in range(1, n + 1))}\n"
            hosts.append(await host_that_ran(jp_fetch, counts))
            if len(set(hosts)) == 2:
                break
        assert set(hosts) == {d.name for d in worker_daemons[:2]}, hosts
        assert engine.states.used > before
    finally:
        ws.close()
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    assert await eventually(lambda: engine.states.used == before)

    async def no_containers():
        found = await asyncio.to_thread(worker_daemons.labelled_containers, os.getpid())
        return not any(found.values())

    assert await eventually(no_containers), worker_daemons.labelled_containers(os.getpid())
