"""REST sessions (``/braindrill/sessions``, ``{"session": id}`` in ``POST /lang/<language>``): state
carried from one execution to the next, each in a fresh container; a session is its creator's
alone, runs one execution at a time, and leaves neither state nor container when it ends (deleted
or expired). A real server with two users (as in test_fairness.py), on real containers."""

from __future__ import annotations

import asyncio
import datetime
import json
import time

import pytest
from tornado.httpclient import HTTPClientError

from .helpers import TwoUsers, as_user, containers_left_async, eventually

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


# -- requests ------------------------------------------------------------------------------------
async def create(jp_fetch, user: str, language: str = "python") -> dict:
    """POST /braindrill/sessions; returns the new session (201)."""
    response = await jp_fetch(
        "braindrill",
        "sessions",
        method="POST",
        body=json.dumps({"language": language}),
        headers={**as_user(user), **JSON},
    )
    assert response.code == 201
    session = json.loads(response.body)
    assert response.headers["Location"].endswith(f"/braindrill/sessions/{session['id']}")
    return session


async def show(jp_fetch, user: str, session_id: str) -> dict:
    response = await jp_fetch("braindrill", "sessions", session_id, headers=as_user(user))
    return json.loads(response.body)


async def listed(jp_fetch, user: str) -> list[dict]:
    response = await jp_fetch("braindrill", "sessions", headers=as_user(user))
    return json.loads(response.body)["sessions"]


async def delete(jp_fetch, user: str, session_id: str):
    response = await jp_fetch(
        "braindrill", "sessions", session_id, method="DELETE", headers=as_user(user)
    )
    assert response.code == 204
    assert response.body == b""


async def run(jp_fetch, user: str, language: str, code: str, headers=None, **fields) -> dict:
    """POST /lang/<language> with a JSON body; returns the Result (200)."""
    response = await jp_fetch(
        "lang",
        language,
        method="POST",
        body=json.dumps({"code": code, **fields}),
        headers={**as_user(user), **JSON, **(headers or {})},
        request_timeout=60,
    )
    assert response.code == 200
    return json.loads(response.body)


async def refused(request) -> tuple[int, str]:
    """The status and message of a refused request."""
    with pytest.raises(HTTPClientError) as e:
        await request
    return e.value.code, json.loads(e.value.response.body)["message"]


def utc(text: str) -> datetime.datetime:
    assert text.endswith("Z"), text
    return datetime.datetime.fromisoformat(text.removesuffix("Z") + "+00:00")


@pytest.fixture
def settings(jp_serverapp):
    return jp_serverapp.web_app.settings


@pytest.fixture
def engine(settings):
    return settings["braindrill_engine"]


@pytest.fixture
def manager(settings):
    return settings["braindrill_sessions"]


# -- the resource --------------------------------------------------------------------------------
class TestSessions:
    @pytest.fixture
    def braindrill_config(self):
        return {**USERS, **NO_POOLS, "RestSessionManager": {"max_per_user": 2}}

    async def test_create_list_get_delete(self, jp_fetch):
        session = await create(jp_fetch, "alice", "PY")
        assert set(session) == {
            "id",
            "language",
            "created",
            "last_used",
            "expires_at",
            "executions",
            "state_bytes",
        }
        assert session["language"] == "python"  # the canonical name, not the alias
        assert session["executions"] == 0 and session["state_bytes"] == 0
        created = utc(session["created"])
        assert utc(session["last_used"]) == created
        assert abs(created - datetime.datetime.now(datetime.timezone.utc)).total_seconds() < 60
        lifetime = (utc(session["expires_at"]) - created).total_seconds()
        assert lifetime == pytest.approx(3600, abs=0.002)  # the default idle_timeout_s
        other = await create(jp_fetch, "alice", "c")
        assert other["id"] != session["id"] and other["language"] == "c"

        assert [s["id"] for s in await listed(jp_fetch, "alice")] == [session["id"], other["id"]]
        assert await listed(jp_fetch, "bob") == []
        shown = await show(jp_fetch, "alice", session["id"])
        assert {k: v for k, v in shown.items() if k != "expires_at"} == {
            k: v for k, v in session.items() if k != "expires_at"
        }

        await delete(jp_fetch, "alice", session["id"])
        code, message = await refused(show(jp_fetch, "alice", session["id"]))
        assert code == 404 and session["id"] in message
        assert await refused(delete(jp_fetch, "alice", session["id"])) == (404, message)
        assert [s["id"] for s in await listed(jp_fetch, "alice")] == [other["id"]]
        await delete(jp_fetch, "alice", other["id"])
        assert await listed(jp_fetch, "alice") == []

    async def test_another_users_session_is_404_everywhere(self, jp_fetch):
        session = await create(jp_fetch, "alice")
        sid = session["id"]
        unknown = await refused(show(jp_fetch, "bob", "0" * 32))
        assert unknown[0] == 404
        # Bob learns nothing: the same answer as for a session that does not exist.
        assert await refused(show(jp_fetch, "bob", sid)) == (404, unknown[1].replace("0" * 32, sid))
        assert (await refused(delete(jp_fetch, "bob", sid)))[0] == 404
        code, message = await refused(run(jp_fetch, "bob", "python", "print(1)", session=sid))
        assert code == 404 and sid in message
        assert await listed(jp_fetch, "bob") == []
        assert (await show(jp_fetch, "alice", sid))["executions"] == 0  # untouched, still hers

    async def test_bad_requests(self, jp_fetch):
        async def create_raw(body: bytes, headers=JSON):
            return await jp_fetch(
                "braindrill",
                "sessions",
                method="POST",
                body=body,
                headers={**as_user("alice"), **headers},
            )

        code, message = await refused(create(jp_fetch, "alice", "cobol"))
        assert code == 404 and "unknown language 'cobol'" in message and "python" in message
        for body, expected in [
            (b"python", "must be JSON"),
            (b"[]", "an object with 'language'"),
            (b"{}", "'language' must be"),
            (b'{"language": 3}', "'language' must be"),
            (b'{"language": "python", "x": 1}', "unknown fields ['x']"),
        ]:
            code, message = await refused(create_raw(body))
            assert code == 400 and expected in message, (body, message)
        assert await listed(jp_fetch, "alice") == []  # nothing was made

        python = await create(jp_fetch, "alice", "python")
        c = await create(jp_fetch, "alice", "c")
        code, message = await refused(run(jp_fetch, "alice", "python", "print(1)", session=c["id"]))
        assert code == 400
        assert message == (
            f"session {c['id']!r} is a c session; use it with POST /lang/c, not /lang/python"
        )
        code, _ = await refused(run(jp_fetch, "alice", "c", "int main(){}", session=python["id"]))
        assert code == 400
        code, message = await refused(run(jp_fetch, "alice", "py", "1", session="nope"))
        assert code == 404 and "'nope'" in message
        code, message = await refused(run(jp_fetch, "alice", "python", "1", session=7))
        assert code == 400 and "'session' must be a session id" in message
        code, message = await refused(run(jp_fetch, "alice", "cobol", "1", session=python["id"]))
        assert code == 404 and "unknown language" in message

    async def test_sessions_per_user_are_capped(self, jp_fetch):
        first = await create(jp_fetch, "alice")
        await create(jp_fetch, "alice", "c")
        with pytest.raises(HTTPClientError) as e:
            await create(jp_fetch, "alice")
        assert e.value.code == 429
        assert 3500 <= int(e.value.response.headers["Retry-After"]) <= 3600  # first one's expiry
        assert "alice" in json.loads(e.value.response.body)["message"]
        await create(jp_fetch, "bob")  # a cap per user
        await delete(jp_fetch, "alice", first["id"])
        await create(jp_fetch, "alice")


# -- state carried over --------------------------------------------------------------------------
@pytest.mark.docker
class TestState:
    @pytest.fixture
    def braindrill_config(self):
        return {**USERS, **NO_POOLS}

    async def test_python_variables_and_files_carry_over(self, jp_fetch):
        sid = (await create(jp_fetch, "alice", "python"))["id"]
        code = "x = 41\nopen('f.txt', 'w').write('hi')"
        first = await run(jp_fetch, "alice", "python", code, session=sid)
        assert first["status"] == "ok" and first["state_message"] is None, first
        session = await show(jp_fetch, "alice", sid)
        assert session["executions"] == 1 and session["state_bytes"] > 0
        second = await run(
            jp_fetch, "alice", "py", "print(x + 1, open('f.txt').read())", session=sid
        )
        assert second["status"] == "ok", second
        assert second["stdout"] == "42 hi\n"
        # The other fields work as usual with a session: stdin, files, limits, interactive.
        third = await run(
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
        assert (await show(jp_fetch, "alice", sid))["executions"] == 4

    async def test_c_files_carry_over(self, jp_fetch):
        sid = (await create(jp_fetch, "alice", "c"))["id"]
        first = await run(jp_fetch, "alice", "c", C_WRITE, session=sid)
        assert first["status"] == "ok", first
        second = await run(jp_fetch, "alice", "c", C_READ, session=sid)
        assert second["status"] == "ok", second
        assert second["stdout"] == "written by the first program\n"

    async def test_without_a_session_nothing_carries_over(self, jp_fetch):
        assert (await run(jp_fetch, "alice", "python", "x = 41"))["status"] == "ok"
        result = await run(jp_fetch, "alice", "python", "print(x)")
        assert result["status"] == "error" and "NameError" in result["stderr"], result
        assert result["state_message"] is None
        # Nor from one session to another.
        one = (await create(jp_fetch, "alice"))["id"]
        other = (await create(jp_fetch, "alice"))["id"]
        await run(jp_fetch, "alice", "python", "x = 41", session=one)
        result = await run(jp_fetch, "alice", "python", "print(x)", session=other)
        assert result["status"] == "error" and "NameError" in result["stderr"], result

    async def test_a_failed_execution_keeps_the_state_before_it(self, jp_fetch):
        """A timeout leaves the state as it was (the result says so)."""
        sid = (await create(jp_fetch, "alice"))["id"]
        await run(jp_fetch, "alice", "python", "x = 1", session=sid)
        code = "x = 2\nimport time\ntime.sleep(30)"
        result = await run(jp_fetch, "alice", "python", code, session=sid, limits={"timeout_s": 1})
        assert result["status"] == "timeout"
        assert "as it was before" in result["state_message"]
        result = await run(jp_fetch, "alice", "python", "print(x)", session=sid)
        assert result["stdout"] == "1\n"

    async def test_executions_of_a_session_run_one_at_a_time(self, jp_fetch, manager):
        sid = (await create(jp_fetch, "alice"))["id"]
        session = manager.get("alice", sid)
        first = asyncio.ensure_future(
            run(
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
        second = asyncio.ensure_future(run(jp_fetch, "alice", "python", code, session=sid))
        assert await eventually(lambda: session.pending == 2, 30, every_s=0.02)
        assert (await first)["status"] == "ok"
        result = await second
        assert result["status"] == "ok", result
        assert result["stdout"] == "first\nsecond\n"


# -- nothing left --------------------------------------------------------------------------------
@pytest.mark.docker
class TestEnd:
    @pytest.fixture
    def braindrill_config(self):
        return {**USERS, **NO_POOLS}

    async def test_deleting_drops_the_state_and_leaves_no_container(self, jp_fetch, engine):
        before = engine.states.used
        sid = (await create(jp_fetch, "alice"))["id"]
        result = await run(jp_fetch, "alice", "python", "x = 'x' * 100000", session=sid)
        assert result["status"] == "ok", result
        state = (await show(jp_fetch, "alice", sid))["state_bytes"]
        assert state > 0 and engine.states.used == before + state
        await delete(jp_fetch, "alice", sid)
        assert engine.states.used == before
        assert engine.states.size(f"session:{sid}") == 0
        assert await containers_left_async() == []

    async def test_a_deleted_sessions_running_execution_keeps_no_state(
        self, jp_fetch, engine, manager
    ):
        before = engine.states.used
        sid = (await create(jp_fetch, "alice"))["id"]
        session = manager.get("alice", sid)
        running = asyncio.ensure_future(
            run(jp_fetch, "alice", "python", "import time\ntime.sleep(3)\nx = 1", session=sid)
        )
        assert await eventually(session.lock.locked, 30, every_s=0.02)
        waiting = asyncio.ensure_future(run(jp_fetch, "alice", "python", "print(x)", session=sid))
        assert await eventually(lambda: session.pending == 2, 30, every_s=0.02)
        await delete(jp_fetch, "alice", sid)
        # The one waiting for its turn is refused: its session is gone.
        code, message = await refused(waiting)
        assert code == 404 and sid in message
        # The running one finishes, and says its state was dropped.
        result = await running
        assert result["status"] == "ok", result
        assert "session ended" in result["state_message"]
        assert engine.states.used == before
        assert engine.states.size(f"session:{sid}") == 0
        assert (await refused(show(jp_fetch, "alice", sid)))[0] == 404
        assert await containers_left_async() == []


@pytest.mark.docker
class TestExpiry:
    @pytest.fixture
    def braindrill_config(self):
        sessions = {"idle_timeout_s": 2.0, "sweep_interval_s": 0.2}
        return {**USERS, **NO_POOLS, "RestSessionManager": sessions}

    async def test_an_idle_session_expires_and_its_state_goes(self, jp_fetch, engine, manager):
        before = engine.states.used
        sid = (await create(jp_fetch, "alice"))["id"]
        shown = await show(jp_fetch, "alice", sid)
        lifetime = (utc(shown["expires_at"]) - utc(shown["last_used"])).total_seconds()
        assert lifetime == pytest.approx(2.0, abs=0.002)
        # An execution running longer than the idle timeout does not expire its session.
        result = await run(
            jp_fetch, "alice", "python", "import time\ntime.sleep(3)\nx = 1", session=sid
        )
        assert result["status"] == "ok" and result["state_message"] is None, result
        assert engine.states.used > before
        # Then, unused, the expiry loop ends it (nothing asks for it meanwhile).
        assert await eventually(lambda: engine.states.used == before, 30, every_s=0.05)
        assert manager.list_for("alice") == []
        code, message = await refused(show(jp_fetch, "alice", sid))
        assert code == 404 and sid in message
        code, _ = await refused(run(jp_fetch, "alice", "python", "print(x)", session=sid))
        assert code == 404
        assert await containers_left_async() == []


class TestExpiryOnAccess:
    @pytest.fixture
    def braindrill_config(self):
        # The loop would come only in an hour: the access itself finds the session expired.
        sessions = {"idle_timeout_s": 0.5, "sweep_interval_s": 3600.0}
        return {**USERS, "RestSessionManager": sessions}

    async def test_an_expired_session_is_gone_when_asked_for(self, jp_fetch, manager):
        sid = (await create(jp_fetch, "alice"))["id"]
        session = manager.get("alice", sid)
        assert await eventually(lambda: manager.expires_at(session) + 0.1 <= time.time())
        assert not session.ended  # the loop has not run
        code, message = await refused(show(jp_fetch, "alice", sid))
        assert code == 404 and sid in message
        assert session.ended
        assert await listed(jp_fetch, "alice") == []


class TestSharedToken:
    """Jupyter's own identity provider makes up a new anonymous user for every request with the
    server's token and no login cookie (curl, scripts): their sessions are the token holder's."""

    async def test_requests_with_the_servers_token_share_sessions(self, jp_fetch):
        response = await jp_fetch(
            "braindrill", "sessions", method="POST", body='{"language": "python"}'
        )
        sid = json.loads(response.body)["id"]
        response = await jp_fetch("braindrill", "sessions", sid)
        assert json.loads(response.body)["id"] == sid
        response = await jp_fetch("braindrill", "sessions")
        assert [s["id"] for s in json.loads(response.body)["sessions"]] == [sid]
        response = await jp_fetch("braindrill", "sessions", sid, method="DELETE")
        assert response.code == 204
