"""Several worker hosts (real extra Docker Engines over mutual TLS): load spreads over every host,
a host that hangs mid-load loses no request and is used again when it returns, missing images are
copied from the master's engine, and /braindrill/workers and /metrics show it all."""

from __future__ import annotations

import asyncio
import json

import docker
import pytest

from tests.helpers import eventually, workers

SLOW = "import time, socket; time.sleep({s}); print('done', socket.gethostname())"


@pytest.fixture
def braindrill_config(worker_daemons):
    return {
        "ExecutionEngine": {
            "hosts": worker_daemons.specs(slots=2),
            "health_interval_s": 0.5,
            "ping_timeout_s": 1.5,
            "docker_timeout_s": 15,
            "queue_size": 100,
            "queue_timeout_s": 180,
        }
    }


async def post(jp_fetch, code, **fields):
    body = json.dumps({"code": code, **fields})
    response = await jp_fetch(
        "lang",
        "python",
        method="POST",
        body=body,
        headers={"Content-Type": "application/json"},
        request_timeout=300,
        connect_timeout=300,
    )
    assert response.code == 200
    return json.loads(response.body)


async def test_load_spreads_over_every_host(jp_fetch, worker_daemons):
    codes = [SLOW.format(s=0.3) for _ in range(30)]
    results = await asyncio.gather(*(post(jp_fetch, c) for c in codes))
    assert [r["status"] for r in results] == ["ok"] * 30, results
    used = {r["worker"] for r in results}
    assert used == {"w1", "w2", "w3"}

    async def all_counted():  # a container is removed (and counted) just after its answer
        status = await workers(jp_fetch)
        return sum(w["completed"] for w in status.values()) >= 30 and status

    status = await eventually(all_counted, 30)
    assert status, "not every execution counted within 30 s"
    for name, w in status.items():
        assert w["healthy"] and w["slots"] == 2 and w["running"] == 0, w
        assert w["completed"] >= 1, name
        # The daemons started empty: the image was copied from the master's engine.
        assert w["images"]["python"], w
        assert w["unable"] == {}
    assert await eventually(lambda: _no_containers(worker_daemons), 60), "containers left"


async def test_metrics(jp_fetch):
    await post(jp_fetch, "print('metrics')")
    await post(jp_fetch, "raise SystemExit(3)")
    text = (await jp_fetch("metrics")).body.decode()
    assert 'braindrill_executions_total{language="python",status="ok"}' in text
    assert 'braindrill_executions_total{language="python",status="error"}' in text
    assert 'braindrill_execution_seconds_count{language="python"}' in text
    assert "braindrill_queue_depth" in text
    for name in ("w1", "w2", "w3"):
        assert f'braindrill_host_healthy{{host="{name}"}} 1.0' in text


async def test_every_host_keeps_its_own_warm_pool(jp_fetch, worker_daemons):
    await warm_up(jp_fetch)  # a miss on every host: each pool grows to at least one

    async def all_warm():
        status = await workers(jp_fetch)
        return all(
            status[d.name]["pool"].get("python", {}).get("ready", 0) >= 1 for d in worker_daemons
        )

    assert await eventually(all_warm, 60), "a host without a warm container"
    hits = {n: w["pool"]["python"]["hits"] for n, w in (await workers(jp_fetch)).items()}
    results = await asyncio.gather(*(post(jp_fetch, SLOW.format(s=0.5)) for _ in range(6)))
    assert [r["status"] for r in results] == ["ok"] * 6
    assert {r["worker"] for r in results} == {d.name for d in worker_daemons}
    after = await workers(jp_fetch)
    assert all(after[d.name]["pool"]["python"]["hits"] > hits[d.name] for d in worker_daemons)


async def test_a_hung_host_loses_no_request_and_comes_back(jp_fetch, worker_daemons):
    victim = worker_daemons[1]
    await warm_up(jp_fetch)
    load = [asyncio.ensure_future(post(jp_fetch, SLOW.format(s=1.5))) for _ in range(30)]

    async def victim_busy():
        return (await workers(jp_fetch))[victim.name]["running"] > 0

    assert await eventually(victim_busy, 60), "nothing ran on the victim"
    victim.freeze()
    try:

        async def out_of_scheduling():
            return not (await workers(jp_fetch))[victim.name]["healthy"]

        assert await eventually(out_of_scheduling, 30), "the hung host stayed in scheduling"
        results = await asyncio.wait_for(asyncio.gather(*load), timeout=240)
    finally:
        victim.thaw()
    statuses = [r["status"] for r in results]
    # Every request got an answer: its output, or worker_lost for those that ran on the victim.
    assert set(statuses) <= {"ok", "worker_lost"}, statuses
    for r in results:
        if r["status"] == "worker_lost":
            assert r["worker"] == victim.name and r["message"], r
        else:
            assert r["stdout"].startswith("done"), r
    assert statuses.count("ok") >= 30 - 2  # at most the victim's two running slots were lost
    others = [r for r in results if r["worker"] != victim.name]
    assert others and all(r["status"] == "ok" for r in others)
    status = await workers(jp_fetch)
    assert status[victim.name]["last_error"]

    # The host answers again: back in scheduling, used again, and the containers of the
    # executions lost on it are removed.
    await _used_again(jp_fetch, victim)
    assert await eventually(lambda: _no_containers(worker_daemons), 60), "containers left"


async def test_worker_lost_is_prompt_and_container_removed_on_return(
    jp_fetch,
    worker_daemons,
):
    victim = worker_daemons[0]
    await warm_up(jp_fetch)
    # Fill every slot with a long run so that two of them are surely on the victim.
    runs = [asyncio.ensure_future(post(jp_fetch, SLOW.format(s=5))) for _ in range(6)]
    ran = await eventually(lambda: running_on(victim, 2))
    assert ran, "no two programs running on the victim within 60 s"
    victim.freeze()
    try:
        # Never a hang: every request returns (the deadline is 10 s; this bound is generous).
        results = await asyncio.wait_for(asyncio.gather(*runs), timeout=60)
        lost = [r for r in results if r["worker"] == victim.name]
        assert len(lost) == 2
        assert all(r["status"] == "worker_lost" for r in lost), lost
        assert all(r["status"] == "ok" for r in results if r["worker"] != victim.name)
    finally:
        victim.thaw()

    # The lost executions' containers are removed once the host answers again.
    assert await eventually(lambda: gone(victim, ran), 60), "the lost containers stayed"


async def test_a_host_that_misses_one_ping_keeps_its_runs(jp_fetch, worker_daemons):
    victim = worker_daemons[1]
    await warm_up(jp_fetch)
    runs = [asyncio.ensure_future(post(jp_fetch, SLOW.format(s=4))) for _ in range(6)]
    assert await eventually(lambda: running_on(victim, 2), 60), "not two runs on the victim"
    victim.freeze()
    try:

        async def suspended():
            return not (await workers(jp_fetch))[victim.name]["healthy"]

        assert await eventually(suspended, 30, every_s=0.05), "never out of scheduling"
    finally:
        victim.thaw()  # before the second ping runs out
    status = (await workers(jp_fetch))[victim.name]
    assert status["missed_pings"] == 1 and not status["failed"], status
    # One missed ping took the host out of scheduling, but what ran on it finished normally.
    results = await asyncio.wait_for(asyncio.gather(*runs), timeout=60)
    assert [r["status"] for r in results] == ["ok"] * 6, results
    assert sum(r["worker"] == victim.name for r in results) == 2
    assert all(r["stdout"].startswith("done") for r in results)

    async def healthy_again():
        w = (await workers(jp_fetch))[victim.name]
        return w["healthy"] and w["missed_pings"] == 0

    assert await eventually(healthy_again, 30), "not healthy again"
    await _used_again(jp_fetch, victim)


async def test_host_without_a_way_to_get_the_image_is_unable(jp_fetch, jp_serverapp):
    manager = jp_serverapp.web_app.settings["braindrill_engine"]
    manager.workers[2].image_overrides["python"] = "braindrill/nonexistent:1"
    manager.workers[2]._images.pop("python", None)
    results = await asyncio.gather(*(post(jp_fetch, "print(1)") for _ in range(8)))
    assert all(r["status"] == "ok" and r["worker"] != "w3" for r in results), results
    status = await workers(jp_fetch)
    reason = status["w3"]["unable"]["python"]
    assert "braindrill/nonexistent:1" in reason and "master" in reason
    assert status["w3"]["healthy"]  # a missing image is not a host failure


async def warm_up(jp_fetch) -> None:
    """Run on every host once (images copied), so that what follows is only about a failure."""
    results = await asyncio.gather(*(post(jp_fetch, SLOW.format(s=0.5)) for _ in range(6)))
    assert {r["worker"] for r in results} == {"w1", "w2", "w3"}


async def running_on(daemon, n: int) -> set[str]:
    """The containers on ``daemon`` running a program (their code delivered; a warm container
    still waiting for its code does not count), once there are ``n``."""

    def find():
        client = daemon.client()
        try:
            running = client.api.containers(
                filters={"label": "braindrill.owner", "status": "running"}
            )
            return {c["Id"] for c in running if _runs_main(client, c["Id"])}
        finally:
            client.close()

    found = await asyncio.to_thread(find)
    return found if len(found) >= n else set()


def _runs_main(client, cid: str) -> bool:
    try:
        processes = client.api.top(cid).get("Processes") or []
    except docker.errors.APIError:  # ended meanwhile
        return False
    # Waiting: the init, the timeout and the bootstrap's shell or the prestarted interpreter.
    # Running: the program too (and, for the bootstrap, its own timeout).
    return len(processes) >= 4


async def gone(daemon, ids: set[str]) -> bool:
    """Whether none of the containers ``ids`` exists on ``daemon`` any more."""

    def check():
        client = daemon.client()
        try:
            return not ids & {c["Id"] for c in client.api.containers(all=True)}
        finally:
            client.close()

    return await asyncio.to_thread(check)


async def _no_containers(daemons) -> bool:
    """No execution's container is left (idle warm-pool containers are meant to stay)."""
    found = await asyncio.to_thread(daemons.labelled_containers, pooled=False)
    return not any(found.values())


async def test_a_host_killed_outright_then_restarted(jp_fetch, worker_daemons):
    victim = worker_daemons[2]
    await warm_up(jp_fetch)
    runs = [asyncio.ensure_future(post(jp_fetch, SLOW.format(s=5))) for _ in range(6)]
    ran = await eventually(lambda: running_on(victim, 2))
    assert ran, "no two programs running on the victim within 60 s"
    victim.kill()  # SIGKILL: connections reset, nothing answers
    results = await asyncio.wait_for(asyncio.gather(*runs), timeout=60)
    lost = [r for r in results if r["worker"] == victim.name]
    assert len(lost) == 2 and all(r["status"] == "worker_lost" for r in lost), [
        (r["worker"], r["status"], r["message"]) for r in results
    ]
    assert all(r["status"] == "ok" for r in results if r["worker"] != victim.name)
    assert not (await workers(jp_fetch))[victim.name]["healthy"]
    # Work goes on without it.
    meanwhile = await asyncio.gather(*(post(jp_fetch, "print(2)") for _ in range(4)))
    assert all(r["status"] == "ok" and r["worker"] != victim.name for r in meanwhile)

    await asyncio.to_thread(victim.start)

    await _used_again(jp_fetch, victim)
    assert await eventually(lambda: gone(victim, ran), 60), "the lost containers stayed"
    assert await eventually(lambda: _no_containers(worker_daemons), 60), "containers left"


class TestRetryWhenCreateFails:
    """A host whose engine refuses to create the sandbox (here: an OCI runtime it does not have)
    is skipped transparently: the execution runs on another host, the user sees only its result."""

    @pytest.fixture
    def braindrill_config(self, worker_daemons):
        broken = worker_daemons[0].spec(slots=2, runtime="no-such-runtime")
        return {
            "ExecutionEngine": {
                "hosts": [broken, worker_daemons[1].spec(slots=2)],
                "health_interval_s": 60,  # keep the broken host out for the whole test
                "queue_timeout_s": 120,
            },
            "WarmPools": {"enabled": False},
        }

    async def test_runs_elsewhere(self, jp_fetch):
        results = await asyncio.gather(*(post(jp_fetch, "print('retried')") for _ in range(4)))
        assert all(r["status"] == "ok" and r["worker"] == "w2" for r in results), results
        status = await workers(jp_fetch)
        assert "no-such-runtime" in status["w1"]["last_error"]
        assert status["w1"]["completed"] == 0


async def _used_again(jp_fetch, victim) -> None:
    """Wait until ``victim`` is healthy again, then check it takes part of a new batch."""

    async def back():
        return (await workers(jp_fetch))[victim.name]["healthy"]

    assert await eventually(back, 60), f"{victim.name} not healthy again"
    again = await asyncio.gather(*(post(jp_fetch, SLOW.format(s=0.2)) for _ in range(12)))
    assert all(r["status"] == "ok" for r in again)
    assert victim.name in {r["worker"] for r in again}
