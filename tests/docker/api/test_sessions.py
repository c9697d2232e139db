"""REST sessions on real containers (``{"session": id}`` in ``POST /lang/<language>``): state
carried from one execution to the next, each in a fresh container; a session runs one execution at
a time, and leaves neither state nor container when it ends (deleted or expired). A real server
with two users (as in tests/docker/engine/test_fairness.py). (The resource itself,
``/braindrill/sessions``, and its refusals: tests/unit/api/test_sessions.py.)"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.helpers import containers_left_async, eventually
from tests.rest import (
    TwoUsers,
    as_user,
    create_session,
    delete_session,
    refused,
    run_as,
    show_session,
    utc,
)

USERS = {"ServerApp": {"identity_provider_class": TwoUsers}}
NO_POOLS = {"WarmPools": {"enabled": False}}  # every container seen belongs to an execution
JSON = {"Content-Type": "application/json"}

C_WRITE = r"""#include <stdio.h>
int main(void) {
    FILE *f = fopen("note.txt", "w");
    fputs("written by the first program\n", f);
    return fclose(f) != 0;
}
"""
C_READ = r"""#include <stdio.h>
int main(void) {
    char line[64];
    FILE *f = fopen("note.txt", "r");
    if (f == NULL) { puts("no note.txt"); return 1; }
    if (fgets(line, sizeof line, f) != NULL) fputs(line, stdout);
    return 0;
}
"""


# -- state carried over --------------------------------------------------------------------------
class TestState:
    @pytest.fixture
    def braindrill_config(self):
        return {**USERS, **NO_POOLS}

    async def test_python_variables_and_files_carry_over(self, jp_fetch):
        sid = (await create_session(jp_fetch, "alice", "python"))["id"]
        code = "x = 41\nopen('f.txt', 'w').write('hi')"
        first = await run_as(jp_fetch, "alice", "python", code, session=sid)
        assert first["status"] == "ok" and first["state_message"] is None, first
        session = await show_session(jp_fetch, "alice", sid)
        assert session["executions"] == 1 and session["state_bytes"] > 0
        second = await run_as(
            jp_fetch, "alice", "py", "print(x + 1, open('f.txt').read())", session=sid
        )
        assert second["status"] == "ok", second
        assert second["stdout"] == "42 hi\n"
        # The other fields work as usual with a session: stdin, files, limits, interactive.
        third = await run_as(
            jp_fetch,
            "alice",
            "python",
            "y = int(input()) + int(open('g.txt').read())\nx + y",
            session=sid,
            stdin="0\n",
            files={"g.txt": "1"},
            limits={"timeout_s": 5},
            interactive=True,
        )
        assert third["status"] == "ok", third
        assert third["outputs"][-1]["data"]["text/plain"] == "42"
        # Any answer format.
        response = await jp_fetch(
            "lang",
            "python",
            method="POST",
            body=json.dumps({"code": "print(x, y, open('g.txt').read())", "session": sid}),
            headers={**as_user("alice"), **JSON, "Accept": "text/plain"},
        )
        assert response.body == b"41 1 1\n"
        assert (await show_session(jp_fetch, "alice", sid))["executions"] == 4

    async def test_c_files_carry_over(self, jp_fetch):
        sid = (await create_session(jp_fetch, "alice", "c"))["id"]
        first = await run_as(jp_fetch, "alice", "c", C_WRITE, session=sid)
        assert first["status"] == "ok", first
        second = await run_as(jp_fetch, "alice", "c", C_READ, session=sid)
        assert second["status"] == "ok", second
        assert second["stdout"] == "written by the first program\n"

    async def test_without_a_session_nothing_carries_over(self, jp_fetch):
        assert (await run_as(jp_fetch, "alice", "python", "x = 41"))["status"] == "ok"
        result = await run_as(jp_fetch, "alice", "python", "print(x)")
        assert result["status"] == "error" and "NameError" in result["stderr"], result
        assert result["state_message"] is None
        # Nor from one session to another.
        one = (await create_session(jp_fetch, "alice"))["id"]
        other = (await create_session(jp_fetch, "alice"))["id"]
        await run_as(jp_fetch, "alice", "python", "x = 41", session=one)
        result = await run_as(jp_fetch, "alice", "python", "print(x)", session=other)
        assert result["status"] == "error" and "NameError" in result["stderr"], result

    async def test_a_failed_execution_keeps_the_state_before_it(self, jp_fetch):
        """A timeout leaves the state as it was (the result says so)."""
        sid = (await create_session(jp_fetch, "alice"))["id"]
        await run_as(jp_fetch, "alice", "python", "x = 1", session=sid)
        code = "x = 2\nimport time\ntime.sleep(30)"
        result = await run_as(
            jp_fetch, "alice", "python", code, session=sid, limits={"timeout_s": 1}
        )
        assert result["status"] == "timeout"
        assert "as it was before" in result["state_message"]
        result = await run_as(jp_fetch, "alice", "python", "print(x)", session=sid)
        assert result["stdout"] == "1\n"

    async def test_executions_of_a_session_run_one_at_a_time(self, jp_fetch, sessions):
        sid = (await create_session(jp_fetch, "alice"))["id"]
        session = sessions.get("alice", sid)
        first = asyncio.ensure_future(
            run_as(
                jp_fetch,
                "alice",
                "python",
                "import time\nopen('log', 'a').write('first\\n')\ntime.sleep(3)",
                session=sid,
            )
        )
        assert await eventually(session.lock.locked, 30, every_s=0.02)
        # Sent while the first runs: it waits for it (not refused) and starts from its state.
        code = "open('log', 'a').write('second\\n')\nprint(open('log').read(), end='')"
        second = asyncio.ensure_future(run_as(jp_fetch, "alice", "python", code, session=sid))
        assert await eventually(lambda: session.pending == 2, 30, every_s=0.02)
        assert (await first)["status"] == "ok"
        result = await second
        assert result["status"] == "ok", result
        assert result["stdout"] == "first\nsecond\n"


# -- nothing left --------------------------------------------------------------------------------
class TestEnd:
    @pytest.fixture
    def braindrill_config(self):
        return {**USERS, **NO_POOLS}

    async def test_deleting_drops_the_state_and_leaves_no_container(self, jp_fetch, engine):
        before = engine.states.used
        sid = (await create_session(jp_fetch, "alice"))["id"]
        result = await run_as(jp_fetch, "alice", "python", "x = 'x' * 100000", session=sid)
        assert result["status"] == "ok", result
        state = (await show_session(jp_fetch, "alice", sid))["state_bytes"]
        assert state > 0 and engine.states.used == before + state
        await delete_session(jp_fetch, "alice", sid)
        assert engine.states.used == before
        assert engine.states.size(f"session:{sid}") == 0
        assert await containers_left_async() == []

    async def test_a_deleted_sessions_running_execution_keeps_no_state(
        self, jp_fetch, engine, sessions
    ):
        before = engine.states.used
        sid = (await create_session(jp_fetch, "alice"))["id"]
        session = sessions.get("alice", sid)
        running = asyncio.ensure_future(
            run_as(jp_fetch, "alice", "python", "import time\ntime.sleep(3)\nx = 1", session=sid)
        )
        assert await eventually(session.lock.locked, 30, every_s=0.02)
        waiting = asyncio.ensure_future(
            run_as(jp_fetch, "alice", "python", "print(x)", session=sid)
        )
        assert await eventually(lambda: session.pending == 2, 30, every_s=0.02)
        await delete_session(jp_fetch, "alice", sid)
        # The one waiting for its turn is refused: its session is gone.
        code, message = await refused(waiting)
        assert code == 404 and sid in message
        # The running one finishes, and says its state was dropped.
        result = await running
        assert result["status"] == "ok", result
        assert "session ended" in result["state_message"]
        assert engine.states.used == before
        assert engine.states.size(f"session:{sid}") == 0
        assert (await refused(show_session(jp_fetch, "alice", sid)))[0] == 404
        assert await containers_left_async() == []


class TestExpiry:
    @pytest.fixture
    def braindrill_config(self):
        sessions = {"idle_timeout_s": 2.0, "sweep_interval_s": 0.2}
        return {**USERS, **NO_POOLS, "RestSessionManager": sessions}

    async def test_an_idle_session_expires_and_its_state_goes(self, jp_fetch, engine, sessions):
        before = engine.states.used
        sid = (await create_session(jp_fetch, "alice"))["id"]
        shown = await show_session(jp_fetch, "alice", sid)
        lifetime = (utc(shown["expires_at"]) - utc(shown["last_used"])).total_seconds()
        assert lifetime == pytest.approx(2.0, abs=0.002)
        # An execution running longer than the idle timeout does not expire its session.
        result = await run_as(
            jp_fetch, "alice", "python", "import time\ntime.sleep(3)\nx = 1", session=sid
        )
        assert result["status"] == "ok" and result["state_message"] is None, result
        assert engine.states.used > before
        # Then, unused, the expiry loop ends it (nothing asks for it meanwhile).
        assert await eventually(lambda: engine.states.used == before, 30, every_s=0.05)
        assert sessions.list_for("alice") == []
        code, message = await refused(show_session(jp_fetch, "alice", sid))
        assert code == 404 and sid in message
        code, _ = await refused(run_as(jp_fetch, "alice", "python", "print(x)", session=sid))
        assert code == 404
        assert await containers_left_async() == []
