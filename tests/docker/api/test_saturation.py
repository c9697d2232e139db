"""Saturation becomes 503 with Retry-After: a full queue, a wait past its limit (an engine that does
not answer needs no Docker Engine to test: tests/unit/api/test_saturation.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado.httpclient import HTTPClientError

from tests.helpers import eventually


async def engine_state(jp_fetch) -> tuple[int, int]:
    """(programs running, requests queued) from ``GET /braindrill/workers``."""
    state = json.loads((await jp_fetch("braindrill", "workers")).body)
    return sum(w["running"] for w in state["workers"]), state["queued"]


def is_state(jp_fetch, running: int, queued: int):
    async def check():
        return await engine_state(jp_fetch) == (running, queued)

    return check


class TestQueueFull:
    @pytest.fixture
    def braindrill_config(self):
        return {"ExecutionEngine": {"slots": 1, "queue_size": 1, "queue_timeout_s": 20}}

    async def test_full_queue_is_503_with_retry_after(self, jp_fetch):
        slow = "import time; time.sleep(2); print('done')"
        first = asyncio.ensure_future(jp_fetch("lang", "python", method="POST", body=slow))
        assert await eventually(is_state(jp_fetch, 1, 0), 20, every_s=0.05)  # the slot taken
        second = asyncio.ensure_future(jp_fetch("lang", "python", method="POST", body=slow))
        assert await eventually(is_state(jp_fetch, 1, 1), 20, every_s=0.05)  # the queue full
        with pytest.raises(HTTPClientError) as e:
            await jp_fetch("lang", "python", method="POST", body="print(1)")
        assert e.value.code == 503
        assert int(e.value.response.headers["Retry-After"]) >= 1
        assert "queue" in json.loads(e.value.response.body)["message"]
        # The ones admitted complete, in order.
        for response in await asyncio.gather(first, second):
            assert json.loads(response.body)["stdout"] == "done\n"


class TestQueueWait:
    @pytest.fixture
    def braindrill_config(self):
        return {"ExecutionEngine": {"slots": 1, "queue_size": 4, "queue_timeout_s": 0.5}}

    async def test_wait_past_the_limit_is_503(self, jp_fetch):
        slow = asyncio.ensure_future(
            jp_fetch("lang", "python", method="POST", body="import time; time.sleep(2)")
        )
        assert await eventually(is_state(jp_fetch, 1, 0), 20, every_s=0.05)  # the slot taken
        with pytest.raises(HTTPClientError) as e:
            await jp_fetch("lang", "python", method="POST", body="print(1)")
        assert e.value.code == 503
        assert "Retry-After" in e.value.response.headers
        assert json.loads((await slow).body)["status"] == "ok"
