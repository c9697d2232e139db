"""The OpenAPI document (``braindrill_ext/api/openapi.json``) for the tests that check the server's
answers against it: the document, its schemas and paths, a validator of any part of it (its
``#/...`` refs resolved in the document), ``check_answer`` (the status, media type, headers and
body of one answer, server-sent events included), a refused request's status, headers and body, and
the config of their test server (small limits, so that a test can be refused on purpose)."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from tornado.httpclient import HTTPClientError

# -- the OpenAPI document (braindrill_ext/api/openapi.json) ----------------------------------------
DOC = json.loads(files("braindrill_ext.api").joinpath("openapi.json").read_text())
SCHEMAS = DOC["components"]["schemas"]
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SESSIONS, SESSION = "/braindrill/sessions", "/braindrill/sessions/{session}"
# A small code_bytes for the 413, a small maximum for the 400 naming it, a cap of two sessions for
# the 429: the test server of the modules that check answers against the document.
OPENAPI_SERVER_CONFIG = {
    "LimitsPolicy": {"code_bytes": 4096, "max_timeout_s": 5.0},
    "RestSessionManager": {"max_per_user": 2},
}
_URI = "urn:braindrill:openapi"
_REGISTRY = Registry().with_resource(_URI, Resource.from_contents(DOC, DRAFT202012))


def deref(node: dict) -> dict:
    """``node`` with a local ``$ref`` (``#/components/...``) followed, repeatedly."""
    while "$ref" in node:
        target = DOC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator(schema: dict) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator of ``schema``, a part of the document (its ``#/...``
    refs point into the document)."""
    return Draft202012Validator(_anchored(schema), registry=_REGISTRY)


def _anchored(node):
    if isinstance(node, dict):
        return {
            k: _URI + v if k == "$ref" and v.startswith("#") else _anchored(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_anchored(v) for v in node]
    return node


def component(name: str) -> Draft202012Validator:
    return validator({"$ref": f"#/components/schemas/{name}"})


def operation(path: str, method: str) -> dict:
    return DOC["paths"][path][method]


def check_answer(path: str, method: str, code: int, headers, body: bytes):
    """Check an answer against the document: its status is described, its Content-Type is one
    of that status's media types, its headers (required ones present) and its body validate.
    Returns the body decoded (JSON) or as text."""
    responses = operation(path, method)["responses"]
    assert str(code) in responses, f"{method.upper()} {path} answered {code}, not described"
    response = deref(responses[str(code)])
    if "content" not in response:  # 204
        assert body == b"" and "Content-Type" not in headers, (code, headers, body)
        return None
    media = headers.get("Content-Type", "").split(";")[0].strip()
    assert media in response["content"], (
        f"{code} came as {media!r}, not {list(response['content'])}"
    )
    for name, spec in response.get("headers", {}).items():
        spec = deref(spec)
        value = headers.get(name)
        if value is None:
            assert not spec.get("required"), f"{code} lacks the required header {name}"
            continue
        schema = deref(spec["schema"])
        decoded = int(value) if schema.get("type") == "integer" else value
        validator(spec["schema"]).validate(decoded)
    schema = response["content"][media]["schema"]
    text = body.decode("utf-8")
    if media == "application/json":
        data = json.loads(text)
        validator(schema).validate(data)
        return data
    if media == "text/event-stream":
        return check_events(text, schema)
    validator(schema).validate(text)
    return text


def check_events(text: str, schema: dict) -> list[tuple[str, object]]:
    """Parse a server-sent event stream; every event validates against ``schema`` (one event:
    its name and data) and its data, JSON, against the ``contentSchema`` of its kind."""
    kinds = {
        branch["properties"]["event"]["const"]: branch["properties"]["data"]["contentSchema"]
        for branch in deref(schema)["oneOf"]
    }
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        validator(schema).validate(fields)
        data = json.loads(fields["data"])
        validator(kinds[fields["event"]]).validate(data)
        events.append((fields["event"], data))
    return events


async def fetch_error(request) -> tuple[int, object, bytes]:
    """The status, headers and body of a refused request."""
    with pytest.raises(HTTPClientError) as e:
        await request
    return e.value.code, e.value.response.headers, e.value.response.body
