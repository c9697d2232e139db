"""Warm pools of containers (sandbox kind "container"): freshness, single use, refill, shrink,
fallback, no leftovers. (Slot runners, which live in the same pools, are tested in
tests/docker/sandbox/test_runner*.py.)"""

from __future__ import annotations

import asyncio
import json
import time

import docker
import pytest

from braindrill_ext.sandbox.protocol import POOLED
from tests.helpers import eventually, labelled_containers, stream_text, workers, ws_execute

# What an execution can see of its container: its id (cgroup v1 path or hostname), the processes
# alive when it starts, and whether an earlier execution's file is there.
# A fresh container: a new hostname, no mark of an earlier execution in /tmp (not /work, which a
# kernel's state carries to its next cell on purpose), its own processes only.
PROBE = (
    "import os, socket\n"
    "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
    "print(socket.gethostname(), os.path.exists('/tmp/mark'), len(pids))\n"
    "open('/tmp/mark', 'w').write('x')\n"
)


@pytest.fixture
def sandbox_kind():
    return "container"


CELLS = "python (cells)"  # the pool of warm containers for notebook cells


async def pool_status(jp_fetch, language="python") -> dict:
    first = next(iter((await workers(jp_fetch)).values()))
    return first["pool"].get(language, {})


class TestWarm:
    @pytest.fixture
    def braindrill_config(self):
        return {
            "ExecutionEngine": {"slots": 6, "pool_interval_s": 0.5},
            "WarmPools": {"languages": {"python": {"min": 2, "max": 4}}},
        }

    async def test_fresh_and_single_use(self, run, jp_fetch):
        assert await eventually(lambda: _ready_at_least(jp_fetch, 2), 20)
        results = [await run("python", PROBE) for _ in range(4)]
        results += await asyncio.gather(*(run("python", PROBE) for _ in range(12)))
        seen = [r["stdout"].split() for r in results]
        hostnames = [hostname for hostname, _, _ in seen]
        assert len(set(hostnames)) == len(hostnames)  # every container used exactly once
        assert all(mark == "False" for _, mark, _ in seen)  # nothing from an earlier execution
        # Only the init, the timeout, the prestart's watchdog and the program: no leftovers.
        assert all(int(count) <= 4 for _, _, count in seen)
        status = await pool_status(jp_fetch)
        assert status["hits"] >= 2

    async def test_refill_after_use(self, run, jp_fetch):
        assert await eventually(lambda: _ready_at_least(jp_fetch, 2), 20)
        before = await pool_status(jp_fetch)
        result = await run("python", "print('warm')")
        assert result["stdout"] == "warm\n"
        after = await pool_status(jp_fetch)
        assert after["hits"] == before["hits"] + 1
        assert await eventually(lambda: _ready_at_least(jp_fetch, 2), 20)

    async def test_kernel_cells_take_warm_containers(self, jp_fetch, jp_ws_fetch):
        """Cells take the warm containers made for cells (IPython started ahead); scripts have
        their own (IPython only if used)."""
        assert await eventually(lambda: _ready_at_least(jp_fetch, 2, CELLS), 20)
        before = await pool_status(jp_fetch, CELLS)
        body = json.dumps({"name": "braindrill-python"})
        kernel_id = json.loads((await jp_fetch("api", "kernels", method="POST", body=body)).body)[
            "id"
        ]
        ws = await jp_ws_fetch("api", "kernels", kernel_id, "channels")
        try:
            seen = []
            for _ in range(2):
                reply, messages = await ws_execute(ws, PROBE)
                assert reply["status"] == "ok", reply
                seen.append(stream_text(messages).split())
        finally:
            ws.close()
            await jp_fetch("api", "kernels", kernel_id, method="DELETE")
        assert seen[0][0] != seen[1][0]  # a container per cell
        assert all(mark == "False" for _, mark, _ in seen)
        assert (await pool_status(jp_fetch, CELLS))["hits"] == before["hits"] + 2

    async def test_deadline_counts_from_delivery(self, run, jp_fetch):
        assert await eventually(lambda: _ready_at_least(jp_fetch, 2), 20)
        warm = _warm_containers_created()

        def waited_past_the_timeout():  # the warm containers waited longer than the timeout...
            return all(_age_s(created) > 6 for created in warm.values())

        assert await eventually(waited_past_the_timeout, 20)
        before = await pool_status(jp_fetch)
        code = (
            "import socket, sys, time\nprint(socket.gethostname(), file=sys.stderr)\n"
            "time.sleep(0.5)\nprint('in time')"
        )
        requested = time.time()
        result = await run("python", code, limits={"timeout_s": 5})
        # ...and its program still gets its 5 s
        assert result["status"] == "ok", result
        assert result["stdout"] == "in time\n"
        # Served warm: a pool hit, by one of the containers that had waited (its hostname is its
        # short id), created more than the timeout before the request.
        assert (await pool_status(jp_fetch))["hits"] == before["hits"] + 1
        served = [cid for cid in warm if cid.startswith(result["stderr"].strip())]
        assert len(served) == 1, (result["stderr"], warm)
        assert _age_s(warm[served[0]], requested) > 5

    async def test_stale_warm_container_falls_back_to_cold(self, run, jp_fetch):
        assert await eventually(lambda: _ready_at_least(jp_fetch, 2), 20)
        client = docker.from_env()
        try:
            for cid in _warm_containers():
                client.api.remove_container(cid, force=True)
        finally:
            client.close()
        result = await run("python", "print('cold but fine')")
        assert result["status"] == "ok", result
        assert result["stdout"] == "cold but fine\n"


class TestShrink:
    @pytest.fixture
    def braindrill_config(self):
        return {
            "ExecutionEngine": {"slots": 6, "pool_interval_s": 0.3},
            "WarmPools": {"languages": {"python": {"min": 0, "max": 3}}, "shrink_after_s": 4},
        }

    async def test_grows_on_demand_then_shrinks_when_idle(self, run, jp_fetch):
        await asyncio.gather(*(run("python", "print(1)") for _ in range(3)))
        status = await pool_status(jp_fetch)
        assert status["misses"] >= 1 and status["target"] >= 1
        assert await eventually(lambda: _target_is(jp_fetch, 0), 20)
        assert await eventually(lambda: _ready_is(jp_fetch, 0), 15)


class TestTimeToLive:
    @pytest.fixture
    def braindrill_config(self):
        return {
            "ExecutionEngine": {"pool_interval_s": 0.3},
            "WarmPools": {"languages": {"python": {"min": 1, "max": 1}}, "ttl_s": 2},
        }

    async def test_idle_warm_container_is_replaced_after_its_ttl(self, run, jp_fetch):
        """(One warm container for scripts, one for cells: the language's minimum each.)"""
        assert await eventually(lambda: _ready_is(jp_fetch, 1), 20)
        assert await eventually(lambda: _ready_is(jp_fetch, 1, CELLS), 20)
        first = _warm_containers()
        assert len(first) == 2

        async def replaced():
            now = _warm_containers()
            return len(now) == 2 and not now & first and await _ready_is(jp_fetch, 1)

        assert await eventually(replaced, 15)  # the old one removed, a new one warm
        result = await run("python", "print('after the ttl')")
        assert result["status"] == "ok" and result["stdout"] == "after the ttl\n"
        assert (await pool_status(jp_fetch))["hits"] == 1


class TestOff:
    @pytest.fixture
    def braindrill_config(self):
        return {"WarmPools": {"enabled": False}}

    async def test_cold_path_without_pools(self, run, jp_fetch):
        result = await run("python", PROBE)
        assert result["status"] == "ok"
        assert await pool_status(jp_fetch) == {}


class TestMissingImage:
    @pytest.fixture
    def braindrill_config(self):
        return {
            "ExecutionEngine": {
                "images": {"ruby": "braindrill/no-such-image:none"},
                "pool_interval_s": 0.3,
            },
            "WarmPools": {"languages": {"ruby": {"min": 1, "max": 2}}},
        }

    async def test_pool_that_cannot_fill_says_why(self, run, jp_fetch):
        async def has_error():
            return bool((await pool_status(jp_fetch, "ruby")).get("last_error"))

        assert await eventually(has_error, 20)
        assert "no-such-image" in (await pool_status(jp_fetch, "ruby"))["last_error"]
        # Other languages are unaffected.
        assert (await run("python", "print('ok')"))["status"] == "ok"


class TestMemoryBudget:
    """A host with a 600 MiB budget and 256 MiB executions: two at a time, warm or running."""

    @pytest.fixture
    def braindrill_config(self):
        return {
            "ExecutionEngine": {
                "hosts": [{"name": "local", "slots": 6, "memory_mib": 600}],
                "pool_interval_s": 0.3,
            },
            "WarmPools": {"languages": {"python": {"min": 3, "max": 3}}},
        }

    async def test_pool_fills_only_within_the_budget(
        self, run, jp_fetch, jp_serverapp, monkeypatch
    ):
        assert await eventually(lambda: _ready_is(jp_fetch, 2), 20)
        pools = jp_serverapp.web_app.settings["braindrill_engine"].host_pools["local"]
        runs, maintain = [], pools.maintain

        async def counted(languages):
            await maintain(languages)
            runs.append(time.monotonic())

        monkeypatch.setattr(pools, "maintain", counted)
        assert await eventually(lambda: len(runs) >= 3, 20, every_s=0.05)
        # three maintenance runs: still two (a third would not fit), and none being made
        assert (await pool_status(jp_fetch))["ready"] == 2
        assert pools.pools["python"].filling == 0
        local = (await workers(jp_fetch))["local"]
        assert local["memory_mib"] == 600 and local["memory_reserved_mib"] == 0

    async def test_executions_share_the_budget(self, run, jp_fetch):
        code = "import time\nprint(time.time())\ntime.sleep(1)\nprint(time.time())"
        results = await asyncio.gather(*(run("python", code) for _ in range(6)))
        assert all(r["status"] == "ok" for r in results), results
        spans = [tuple(map(float, r["stdout"].split())) for r in results]
        # Never more than two programs at once, though there are six slots.
        most = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
        assert most == 2

    async def test_too_large_for_the_host_is_a_clear_503(self, jp_fetch):
        with pytest.raises(Exception) as e:
            await jp_fetch(
                "lang", "python", method="POST",
                body=json.dumps({"code": "print(1)", "limits": {"memory_mib": 1024}}),
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
        assert e.value.code == 503
        assert "larger than the memory budget" in e.value.response.body.decode()
        assert e.value.response.headers["Retry-After"]


def _warm_containers() -> set[str]:
    """Ids of this test process's warm containers."""
    return set(_warm_containers_created())


def _warm_containers_created() -> dict[str, int]:
    """This test process's warm containers: id → when Docker created it (whole epoch seconds)."""
    return {c["Id"]: c["Created"] for c in labelled_containers() if c["Labels"].get(POOLED) == "1"}


def _age_s(created: int, now: float | None = None) -> float:
    """How long ago at least (Docker's creation time is rounded down to the second)."""
    return (time.time() if now is None else now) - (created + 1)


async def _ready_at_least(jp_fetch, n, pool="python"):
    return (await pool_status(jp_fetch, pool)).get("ready", 0) >= n


async def _ready_is(jp_fetch, n, pool="python"):
    return (await pool_status(jp_fetch, pool)).get("ready", 0) == n


async def _target_is(jp_fetch, n):
    return (await pool_status(jp_fetch)).get("target", -1) == n
