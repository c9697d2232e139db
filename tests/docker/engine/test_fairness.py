"""Fairness between users (per-user concurrency and rate limits, 429 with Retry-After) and the
audit line of every execution, on a real server with two authenticated users."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest
from tornado.httpclient import HTTPClientError

from tests.helpers import containers_left_async, eventually, stream_text, ws_execute
from tests.rest import TwoUsers, as_user

SLOW = "import time; time.sleep(3); print('slow')"


async def post(jp_fetch, user: str, code: str):
    return await jp_fetch("lang", "python", method="POST", body=code, headers=as_user(user))


async def refused(jp_fetch, user: str, code: str) -> HTTPClientError:
    with pytest.raises(HTTPClientError) as e:
        await post(jp_fetch, user, code)
    return e.value


class TestConcurrencyPerUser:
    @pytest.fixture
    def braindrill_config(self):
        return {
            "ServerApp": {"identity_provider_class": TwoUsers},
            "ExecutionEngine": {"slots": 3, "queue_size": 16},
            "UserLimits": {"max_concurrent": 2},
            "WarmPools": {"enabled": False},
        }

    async def test_a_flooding_user_does_not_starve_another(self, jp_fetch):
        flood = [asyncio.ensure_future(post(jp_fetch, "alice", SLOW)) for _ in range(2)]

        async def both_running():
            state = json.loads(
                (await jp_fetch("braindrill", "workers", headers=as_user("bob"))).body
            )
            return state["workers"][0]["running"] == 2

        assert await eventually(both_running, 30, every_s=0.05)
        # Alice's third and fourth are refused at once, not queued behind her own.
        for _ in range(2):
            error = await refused(jp_fetch, "alice", SLOW)
            assert error.code == 429
            assert int(error.response.headers["Retry-After"]) >= 1
            assert "alice" in json.loads(error.response.body)["message"]
        # Bob is served at once, while Alice's programs still run.
        response = await post(jp_fetch, "bob", "print('bob')")
        assert json.loads(response.body)["stdout"] == "bob\n"
        assert not any(f.done() for f in flood)
        for result in await asyncio.gather(*flood):
            assert json.loads(result.body)["stdout"] == "slow\n"
        # Her places are given back when her executions end.
        response = await post(jp_fetch, "alice", "print('again')")
        assert json.loads(response.body)["status"] == "ok"


class TestRatePerUser:
    @pytest.fixture
    def braindrill_config(self):
        return {
            "ServerApp": {"identity_provider_class": TwoUsers},
            "UserLimits": {"rate_per_minute": 6, "burst": 2},
        }

    async def test_past_the_rate_is_429_for_that_user_only(self, jp_fetch):
        for _ in range(2):
            assert json.loads((await post(jp_fetch, "alice", "print(1)")).body)["status"] == "ok"
        error = await refused(jp_fetch, "alice", "print(1)")
        assert error.code == 429
        assert 1 <= int(error.response.headers["Retry-After"]) <= 10  # one token: 10 s at 6/min
        assert "rate" in json.loads(error.response.body)["message"]
        assert json.loads((await post(jp_fetch, "bob", "print(2)")).body)["stdout"] == "2\n"


AUDIT_TEXT = re.compile(
    r"braindrill event=execution id=\w+ user=bob language=python status=error exit_code=3 "
    r"duration_ms=\d+ queued_ms=\d+ host=local container=[0-9a-f]{12}"
)


class TestAuditText:
    @pytest.fixture
    def braindrill_config(self):
        return {"ServerApp": {"identity_provider_class": TwoUsers}}

    async def test_one_line_per_execution(self, jp_fetch, caplog):
        caplog.set_level(logging.INFO)
        await post(jp_fetch, "bob", "import sys; sys.exit(3)")
        lines = [r.getMessage() for r in caplog.records if "user=bob" in r.getMessage()]
        assert len(lines) == 1 and AUDIT_TEXT.fullmatch(lines[0]), lines


class TestAuditJson:
    @pytest.fixture
    def braindrill_config(self):
        return {
            "ServerApp": {"identity_provider_class": TwoUsers},
            "ExecutionEngine": {"audit_format": "json", "slots": 1, "queue_size": 1},
            "UserLimits": {"max_concurrent": 1},
        }

    async def test_json_lines_also_for_refused_requests(self, jp_fetch, caplog):
        caplog.set_level(logging.INFO)
        slow = asyncio.ensure_future(post(jp_fetch, "alice", SLOW))

        async def running():
            return json.loads(
                (await jp_fetch("braindrill", "workers", headers=as_user("bob"))).body
            )["workers"][0]["running"]

        assert await eventually(running, 30, every_s=0.05)
        assert (await refused(jp_fetch, "alice", "print(1)")).code == 429
        await slow
        lines = [
            json.loads(r.getMessage())
            for r in caplog.records
            if r.getMessage().startswith('{"event": "execution"') and '"alice"' in r.getMessage()
        ]
        by_status = {line["status"]: line for line in lines}
        assert set(by_status) == {"ok", "refused"}, lines
        ok, no = by_status["ok"], by_status["refused"]
        assert ok["user"] == "alice" and ok["exit_code"] == 0 and ok["host"] == "local"
        assert re.fullmatch(r"[0-9a-f]{12}", ok["container"]) and ok["duration_ms"] >= 3000
        assert no["user"] == "alice" and no["refused"].startswith("TooManyRequests")


class TestKernelsPerUser:
    """A kernel's cells count for the user its client names: one user's kernels cannot take
    another's place either."""

    @pytest.fixture
    def braindrill_config(self):
        return {"UserLimits": {"max_concurrent": 1}, "WarmPools": {"enabled": False}}

    async def test_a_users_kernels_do_not_starve_another(self, jp_fetch, jp_ws_fetch):
        sockets, ids = [], []
        try:
            for _ in range(3):
                body = json.dumps({"name": "braindrill-python"})
                response = await jp_fetch("api", "kernels", method="POST", body=body)
                ids.append(json.loads(response.body)["id"])
                sockets.append(await jp_ws_fetch("api", "kernels", ids[-1], "channels"))
            first, second, third = sockets
            slow = asyncio.ensure_future(ws_execute(first, SLOW, username="alice"))

            async def running():
                state = json.loads((await jp_fetch("braindrill", "workers")).body)
                return state["workers"][0]["running"] == 1

            assert await eventually(running, 30, every_s=0.05)
            reply, _ = await ws_execute(second, "print('alice again')", username="alice")
            assert reply["status"] == "error" and reply["ename"] == "TooManyRequests", reply
            reply, messages = await ws_execute(third, "print('bob')", username="bob")
            assert reply["status"] == "ok" and stream_text(messages) == "bob\n", reply
            assert not slow.done()  # bob was served while alice's cell still ran
            reply, _ = await slow
            assert reply["status"] == "ok"
        finally:
            for ws in sockets:
                ws.close()
            for kernel_id in ids:
                await jp_fetch("api", "kernels", kernel_id, method="DELETE")
        assert await containers_left_async() == []
