"""One real slot runner stopping sandbox after sandbox (its stream, pure logic:
tests/unit/sandbox/test_runner.py; the nested sandboxes' hostile cases run in
``test_sandbox_security.py``, ``test_runner_isolation.py`` and the other modules parametrised with
both kinds)."""

from __future__ import annotations

import pytest

from braindrill_ext.sandbox.payload import GRACE_S


@pytest.fixture
def sandbox_kind():
    return "nested"


@pytest.fixture
def braindrill_config():
    return {"ExecutionEngine": {"slots": 1}}  # one runner per language


async def test_one_runner_stops_sandbox_after_sandbox(run):
    """Timeouts and floods back to back on a host of one slot: each sandbox is stopped at once
    by its own stop frame (a lost one would leave the deadline to the grace period and the
    runner's replacement), including floods that end by themselves while the stop is on its way,
    and the same runner runs them all and what follows, each in a fresh sandbox."""
    finite_flood = "hostname; head -c 3000000 /dev/zero | tr '\\0' x"
    results = [await run("bash", "hostname; sleep 30", limits={"timeout_s": 1}) for _ in range(3)]
    results += [await run("bash", "hostname; yes") for _ in range(2)]
    results += [await run("bash", finite_flood) for _ in range(3)]
    results.append(await run("bash", "hostname"))
    statuses = [r["status"] for r in results]
    assert statuses == ["timeout"] * 3 + ["output_limit"] * 5 + ["ok"], results
    for r in results[:3]:
        assert r["duration_ms"] < 1000 + GRACE_S * 1000, r
    names = [r["stdout"].split()[0] for r in results]
    assert len(set(names)) == len(names), names  # a fresh sandbox each time
    assert len({name.rpartition("-")[0] for name in names}) == 1, names  # in one runner
