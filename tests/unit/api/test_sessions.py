"""REST sessions, the resource (``/braindrill/sessions``): a session is its creator's alone, named
by its language, capped per user, gone when deleted or expired; refusals of bad requests. A real
server with two users, no Docker Engine needed: no code runs. (State carried from one execution to
the next, on real containers: tests/docker/api/test_sessions.py.)"""

from __future__ import annotations

import datetime
import json
import time

import pytest
from tornado.httpclient import HTTPClientError

from tests.helpers import eventually
from tests.rest import (
    TwoUsers,
    as_user,
    create_session,
    delete_session,
    list_sessions,
    refused,
    run_as,
    show_session,
    utc,
)

USERS = {"ServerApp": {"identity_provider_class": TwoUsers}}
NO_POOLS = {"WarmPools": {"enabled": False}}  # every container seen belongs to an execution
JSON = {"Content-Type": "application/json"}


# -- the resource --------------------------------------------------------------------------------
class TestSessions:
    @pytest.fixture
    def braindrill_config(self):
        return {**USERS, **NO_POOLS, "RestSessionManager": {"max_per_user": 2}}

    async def test_create_list_get_delete(self, jp_fetch):
        session = await create_session(jp_fetch, "alice", "PY")
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
        other = await create_session(jp_fetch, "alice", "c")
        assert other["id"] != session["id"] and other["language"] == "c"

        assert [s["id"] for s in await list_sessions(jp_fetch, "alice")] == [
            session["id"],
            other["id"],
        ]
        assert await list_sessions(jp_fetch, "bob") == []
        shown = await show_session(jp_fetch, "alice", session["id"])
        assert {k: v for k, v in shown.items() if k != "expires_at"} == {
            k: v for k, v in session.items() if k != "expires_at"
        }

        await delete_session(jp_fetch, "alice", session["id"])
        code, message = await refused(show_session(jp_fetch, "alice", session["id"]))
        assert code == 404 and session["id"] in message
        assert await refused(delete_session(jp_fetch, "alice", session["id"])) == (404, message)
        assert [s["id"] for s in await list_sessions(jp_fetch, "alice")] == [other["id"]]
        await delete_session(jp_fetch, "alice", other["id"])
        assert await list_sessions(jp_fetch, "alice") == []

    async def test_another_users_session_is_404_everywhere(self, jp_fetch):
        session = await create_session(jp_fetch, "alice")
        sid = session["id"]
        unknown = await refused(show_session(jp_fetch, "bob", "0" * 32))
        assert unknown[0] == 404
        # Bob learns nothing: the same answer as for a session that does not exist.
        assert await refused(show_session(jp_fetch, "bob", sid)) == (
            404,
            unknown[1].replace("0" * 32, sid),
        )
        assert (await refused(delete_session(jp_fetch, "bob", sid)))[0] == 404
        code, message = await refused(run_as(jp_fetch, "bob", "python", "print(1)", session=sid))
        assert code == 404 and sid in message
        assert await list_sessions(jp_fetch, "bob") == []
        assert (await show_session(jp_fetch, "alice", sid))[
            "executions"
        ] == 0  # untouched, still hers

    async def test_bad_requests(self, jp_fetch):
        async def create_raw(body: bytes, headers=JSON):
            return await jp_fetch(
                "braindrill",
                "sessions",
                method="POST",
                body=body,
                headers={**as_user("alice"), **headers},
            )

        code, message = await refused(create_session(jp_fetch, "alice", "cobol"))
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
        assert await list_sessions(jp_fetch, "alice") == []  # nothing was made

        python = await create_session(jp_fetch, "alice", "python")
        c = await create_session(jp_fetch, "alice", "c")
        code, message = await refused(
            run_as(jp_fetch, "alice", "python", "print(1)", session=c["id"])
        )
        assert code == 400
        assert message == (
            f"session {c['id']!r} is a c session; use it with POST /lang/c, not /lang/python"
        )
        code, _ = await refused(
            run_as(jp_fetch, "alice", "c", "int main(){}", session=python["id"])
        )
        assert code == 400
        code, message = await refused(run_as(jp_fetch, "alice", "py", "1", session="nope"))
        assert code == 404 and "'nope'" in message
        code, message = await refused(run_as(jp_fetch, "alice", "python", "1", session=7))
        assert code == 400 and "'session' must be a session id" in message
        code, message = await refused(run_as(jp_fetch, "alice", "cobol", "1", session=python["id"]))
        assert code == 404 and "unknown language" in message

    async def test_sessions_per_user_are_capped(self, jp_fetch):
        first = await create_session(jp_fetch, "alice")
        await create_session(jp_fetch, "alice", "c")
        with pytest.raises(HTTPClientError) as e:
            await create_session(jp_fetch, "alice")
        assert e.value.code == 429
        assert 3500 <= int(e.value.response.headers["Retry-After"]) <= 3600  # first one's expiry
        assert "alice" in json.loads(e.value.response.body)["message"]
        await create_session(jp_fetch, "bob")  # a cap per user
        await delete_session(jp_fetch, "alice", first["id"])
        await create_session(jp_fetch, "alice")


class TestExpiryOnAccess:
    @pytest.fixture
    def braindrill_config(self):
        # The loop would come only in an hour: the access itself finds the session expired.
        sessions = {"idle_timeout_s": 0.5, "sweep_interval_s": 3600.0}
        return {**USERS, "RestSessionManager": sessions}

    async def test_an_expired_session_is_gone_when_asked_for(self, jp_fetch, sessions):
        sid = (await create_session(jp_fetch, "alice"))["id"]
        session = sessions.get("alice", sid)
        assert await eventually(lambda: sessions.expires_at(session) + 0.1 <= time.time())
        assert not session.ended  # the loop has not run
        code, message = await refused(show_session(jp_fetch, "alice", sid))
        assert code == 404 and sid in message
        assert session.ended
        assert await list_sessions(jp_fetch, "alice") == []


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
