"""The REST API's requests as the tests make them: two users with a token each (``TwoUsers``, a
test server's identity provider, and ``as_user``, a request's headers), hello world in each language
of ``POST /lang``, the requests of REST sessions and of ``POST /lang`` as one of the users, a
refused request's status and message, and the API's times as datetimes. (Answers checked against
the OpenAPI document: ``openapi.py``.)"""

from __future__ import annotations

import datetime
import json

import pytest
from jupyter_server.auth.identity import IdentityProvider, User
from tornado.httpclient import HTTPClientError

# -- two users ---------------------------------------------------------------------------------
TOKENS = {"alice-token": "alice", "bob-token": "bob"}


class TwoUsers(IdentityProvider):
    """Two users, each with a token of their own (as a multi-user deployment has): a test
    server's ``ServerApp.identity_provider_class``."""

    def get_user_token(self, handler):
        token = handler.request.headers.get("Authorization", "").removeprefix("token ").strip()
        name = TOKENS.get(token)
        return User(username=name) if name else None


def as_user(name: str) -> dict:
    """The headers of a request by ``name``, one of the ``TwoUsers``."""
    token = next(t for t, user in TOKENS.items() if user == name)
    return {"Authorization": f"token {token}"}


# -- hello world in the languages of POST /lang (REST) ------------------------------------------
HELLO = {
    "python": ('print("drill my brain")', "drill my brain\n"),
    "javascript": ('console.log("drill my brain")', "drill my brain\n"),
    "java": (
        "public class Anything { public static void main(String[] a) {"
        ' System.out.println("drill my brain"); } }',
        "drill my brain\n",
    ),
    "ruby": ('puts "drill my brain"', "drill my brain\n"),
    "perl": ('print "drill my brain\\n";', "drill my brain\n"),
    "php": ('<?php echo "drill my brain\\n";', "drill my brain\n"),
}


# -- REST sessions, as one of the TwoUsers ---------------------------------------------------------
# Spread into each request's headers, never given as they are: jp_fetch adds the server's token to
# the dict it is given (a module's own JSON headers are its own).
_JSON = {"Content-Type": "application/json"}


async def create_session(jp_fetch, user: str, language: str = "python") -> dict:
    """POST /braindrill/sessions; returns the new session (201)."""
    response = await jp_fetch(
        "braindrill",
        "sessions",
        method="POST",
        body=json.dumps({"language": language}),
        headers={**as_user(user), **_JSON},
    )
    assert response.code == 201
    session = json.loads(response.body)
    assert response.headers["Location"].endswith(f"/braindrill/sessions/{session['id']}")
    return session


async def show_session(jp_fetch, user: str, session_id: str) -> dict:
    response = await jp_fetch("braindrill", "sessions", session_id, headers=as_user(user))
    return json.loads(response.body)


async def list_sessions(jp_fetch, user: str) -> list[dict]:
    response = await jp_fetch("braindrill", "sessions", headers=as_user(user))
    return json.loads(response.body)["sessions"]


async def delete_session(jp_fetch, user: str, session_id: str):
    response = await jp_fetch(
        "braindrill", "sessions", session_id, method="DELETE", headers=as_user(user)
    )
    assert response.code == 204
    assert response.body == b""


async def run_as(jp_fetch, user: str, language: str, code: str, headers=None, **fields) -> dict:
    """POST /lang/<language> with a JSON body, as ``user``; returns the Result (200)."""
    response = await jp_fetch(
        "lang",
        language,
        method="POST",
        body=json.dumps({"code": code, **fields}),
        headers={**as_user(user), **_JSON, **(headers or {})},
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
    """An ISO 8601 time of the API (``...Z``) as an aware datetime."""
    assert text.endswith("Z"), text
    return datetime.datetime.fromisoformat(text.removesuffix("Z") + "+00:00")
