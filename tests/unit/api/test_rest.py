"""The refusals of POST /lang/<language>, over a real Jupyter server: bad requests are answered
before anything runs, so no Docker Engine is needed (what runs: tests/docker/api/test_rest.py)."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

from tests.helpers import sandbox_kinds as sandbox_kind  # noqa: F401 (a fixture: both kinds)
from tests.rest import HELLO


async def error_of(request) -> tuple[int, dict, dict]:
    with pytest.raises(HTTPClientError) as e:
        await request
    body = e.value.response.body
    return e.value.code, (json.loads(body) if body else {}), e.value.response.headers


# -- bad input ----------------------------------------------------------------------------------
async def test_unknown_language_is_404_listing_known(jp_fetch):
    code, body, _ = await error_of(jp_fetch("lang", "cobol", method="POST", body="x"))
    assert code == 404
    assert "cobol" in body["message"]
    for name in HELLO:
        assert name in body["message"]


@pytest.mark.parametrize(
    "body,content_type,needle",
    [
        ("{not json", "application/json", "malformed JSON"),
        ('["print(1)"]', "application/json", "must be an object"),
        ('{"stdin": "x"}', "application/json", "needs 'code'"),
        ('{"code": 42}', "application/json", "'code' must be a string"),
        ('{"code": "1", "args": "a"}', "application/json", "'args' must be a list"),
        ('{"code": "1", "files": {"../x": "y"}}', "application/json", "bad file name"),
        ('{"code": "1", "files": {"main.py": "y"}}', "application/json", "bad file name"),
        ('{"code": "1", "bogus": 1}', "application/json", "unknown fields"),
        ('{"code": "1", "limits": {"timeout_s": 600}}', "application/json", "maximum of 60"),
        ('{"code": "1", "limits": {"memory_mib": 4096}}', "application/json", "maximum of 1024"),
        ('{"code": "1", "limits": {"timeout_s": -1}}', "application/json", "greater than 0"),
        ('{"code": "1", "limits": {"timeout_s": "9"}}', "application/json", "must be a number"),
        ('{"code": "1", "limits": {"pids": 9000}}', "application/json", "fixed limit"),
        ("   ", "text/plain", "empty"),
    ],
)
async def test_bad_requests_are_400(jp_fetch, body, content_type, needle):
    code, data, _ = await error_of(
        jp_fetch("lang", "python", method="POST", body=body, headers={"Content-Type": content_type})
    )
    assert code == 400
    assert needle in data["message"]


async def test_non_utf8_body_is_400(jp_fetch):
    code, data, _ = await error_of(jp_fetch("lang", "python", method="POST", body=b"\xff\xfe"))
    assert code == 400
    assert "UTF-8" in data["message"]


async def test_code_over_the_limit_is_413(jp_fetch):
    code, data, _ = await error_of(
        jp_fetch("lang", "python", method="POST", body="#" * (512 * 1024 + 1))
    )
    assert code == 413
    assert "524288" in data["message"]
    big = json.dumps({"code": "print(1)", "stdin": "x" * (600 * 1024)})
    code, data, _ = await error_of(
        jp_fetch(
            "lang", "python", method="POST", body=big, headers={"Content-Type": "application/json"}
        )
    )
    assert code == 413


async def test_auth_is_required(jp_fetch):
    code, _, _ = await error_of(
        jp_fetch(
            "lang",
            "python",
            method="POST",
            body="print(1)",
            headers={"Authorization": "token wrong"},
        )
    )
    assert code in (401, 403)


# A compiled language's compile limits (what they do: tests/docker/test_languages.py).
async def test_compile_memory_above_the_maximum_is_refused(jp_fetch):
    body = json.dumps(
        {"code": "int main(void) { return 0; }", "limits": {"compile_memory_mib": 1 << 20}}
    )
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch(
            "lang", "c", method="POST", body=body, headers={"Content-Type": "application/json"}
        )
    assert e.value.code == 400
    assert "compile_memory_mib" in e.value.response.body.decode()
