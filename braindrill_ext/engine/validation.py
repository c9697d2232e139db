"""Requests into Executions: the one place where what a user sends is checked.

A REST body (``parse_body``) and a kernel cell (``split_limits``) become the same fields, and
``make_execution`` turns them into an ``Execution`` with the operator's limits applied; a REST
body's ``session`` (its id) stays with the handler. ``parse_session_body`` reads the body that
creates a session. Every
refusal is an ``InvalidRequest``, ``PayloadTooLarge`` or ``UnknownLanguage`` naming what is wrong
and what is allowed; only the handlers turn them into HTTP answers.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json

from ..errors import InvalidRequest, PayloadTooLarge
from ..execution import Execution, Limits
from ..sandbox.protocol import JOB_DIR
from .limits import LIMIT_FIELDS, REQUESTABLE, LimitsPolicy
from .statefiles import check_patterns
from .wheels import parse_requirements

JSON_FIELDS = (
    "code", "stdin", "args", "files", "limits", "interactive", "session", "return_files",
    "packages",
)  # fmt: skip
MAX_PACKAGES = 32  # requirements in one request's ``packages``
SESSION_FIELDS = ("language",)  # POST /braindrill/sessions
SESSION_BODY_BYTES = 4096
LIMITS_MAGIC = "%%limits"


def parse_body(body: bytes, content_type: str, limit: int) -> dict:
    """The fields of a ``POST /lang/<language>`` body: the code itself, or (``application/json``)
    an object of ``JSON_FIELDS`` with at least ``code``. A ``session`` is a session id (a
    string, or null for none); the caller takes it out before ``make_execution``. ``limit``: the
    engine's ``code_bytes``."""
    is_json = content_type == "application/json"
    if len(body) > (4 * limit if is_json else limit):
        raise PayloadTooLarge(f"the body is {len(body)} bytes; the code limit is {limit} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidRequest(f"the body is not valid UTF-8: {e}") from e
    if not is_json:
        if not text.strip():
            raise InvalidRequest("the body is empty: send the code to run")
        return {"code": text}
    try:
        data = json.loads(text)
    except ValueError as e:
        raise InvalidRequest(f"malformed JSON body: {e}") from e
    _check_object(data, JSON_FIELDS, "at least 'code'")
    if "code" not in data:
        raise InvalidRequest("the JSON body needs 'code'")
    session = data.get("session")
    if session is not None and not (isinstance(session, str) and session):
        raise InvalidRequest("'session' must be a session id (POST /braindrill/sessions) or null")
    return data


def parse_session_body(body: bytes) -> str:
    """The language of a ``POST /braindrill/sessions`` body, ``{"language": "<name or alias>"}``
    (JSON whatever the Content-Type). The caller checks that the language exists."""
    if len(body) > SESSION_BODY_BYTES:
        raise InvalidRequest(f"the body is {len(body)} bytes; at most {SESSION_BODY_BYTES}")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidRequest(f"the body must be JSON {{'language': <name>}}: {e}") from e
    _check_object(data, SESSION_FIELDS, "'language'")
    language = data.get("language")
    if not isinstance(language, str) or not language:
        raise InvalidRequest("'language' must be a language's name or alias (GET /lang)")
    return language


def _check_object(data, fields: tuple[str, ...], needs: str) -> None:
    """A JSON body must be an object of ``fields`` only (``needs`` says what it must hold)."""
    if not isinstance(data, dict):
        raise InvalidRequest(f"the JSON body must be an object with {needs}")
    unknown = set(data) - set(fields)
    if unknown:
        raise InvalidRequest(f"unknown fields {sorted(unknown)}; allowed: {list(fields)}")


def split_limits(code: str) -> tuple[dict | None, str]:
    """Split a first line ``%%limits timeout_s=30 memory_mib=512`` off a kernel cell.

    Returns the requested limits (None without the line) and the code; ``make_execution``
    checks the values like a REST request's."""
    first, _, rest = code.partition("\n")
    words = first.split()
    if not words or words[0] != LIMITS_MAGIC:
        return None, code
    limits = {}
    for word in words[1:]:
        name, sep, value = word.partition("=")
        if not sep or not name:
            raise InvalidRequest(f"{LIMITS_MAGIC} takes name=value pairs, got {word!r}")
        limits[name] = _number(name, value)
    return limits, rest


def _number(name: str, value: str):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    raise InvalidRequest(f"limit {name!r} must be a number, got {value!r}")


def make_execution(
    registry,
    policy: LimitsPolicy,
    language: str,
    code,
    *,
    stdin="",
    args=None,
    files=None,
    limits=None,
    interactive=False,
    execution_count=0,
    user="",
    return_files=None,
    packages=None,
    **cell,
) -> Execution:
    """Check one request and make its Execution. Raises UnknownLanguage, InvalidRequest or
    PayloadTooLarge. Used by the REST handlers and the kernels alike; ``cell``: a kernel's own
    fields of a cell (``history``, ``input``, ``tool``), passed as they are."""
    lang = registry.get(language)
    if not isinstance(code, str):
        raise InvalidRequest("'code' must be a string")
    if not isinstance(stdin, str):
        raise InvalidRequest("'stdin' must be a string")
    args = [] if args is None else args
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise InvalidRequest("'args' must be a list of strings")
    files = _file_contents({} if files is None else files)
    for name in files:
        if not _safe_file_name(name) or name == lang.source_file:
            raise InvalidRequest(
                f"bad file name {name!r}: use a relative path without '..', not "
                f"{lang.source_file!r} and not under {JOB_DIR}/"
            )
    if not isinstance(interactive, bool):
        raise InvalidRequest("'interactive' must be true or false")
    return_files = check_patterns([] if return_files is None else return_files)
    packages = [] if packages is None else packages
    parse_requirements(packages)  # the syntax; the engine applies the operator's policy
    if len(packages) > MAX_PACKAGES:
        raise InvalidRequest(f"'packages' lists {len(packages)}; at most {MAX_PACKAGES}")
    _check_size(policy, code, stdin, files)
    return Execution(
        lang,
        code,
        resolve_limits(policy, lang, limits),
        stdin,
        args,
        files,
        interactive=interactive,
        execution_count=execution_count,
        user=user,
        return_files=return_files,
        packages=[item.strip() for item in packages],
        **cell,
    )


def _file_contents(files) -> dict[str, str | bytes]:
    """A request's ``files``: name → text, or name → ``{"base64": "..."}`` for any bytes."""
    if not isinstance(files, dict):
        raise InvalidRequest("'files' must be an object of file name → content")
    contents = {}
    for name, value in files.items():
        if isinstance(value, str):
            contents[name] = value
            continue
        if not (isinstance(value, dict) and set(value) == {"base64"}):
            raise InvalidRequest(
                "'files' must be an object of file name → text content or "
                f'{{"base64": "<bytes in base64>"}}; {name!r} is neither'
            )
        try:
            contents[name] = base64.b64decode(value["base64"], validate=True)
        except (TypeError, ValueError, binascii.Error) as e:
            raise InvalidRequest(f"file {name!r}: 'base64' is not valid base64: {e}") from e
    return contents


def resolve_limits(policy: LimitsPolicy, language, requested) -> Limits:
    """The limits of one execution: the language's defaults with ``requested`` applied.

    Raises ``InvalidRequest`` for an unknown limit, a wrong type, a value <= 0, or a value above
    the operator's maximum (the message names the maximum)."""
    limits = policy.defaults(language)
    if not requested:
        return limits
    if not isinstance(requested, dict):
        raise InvalidRequest("'limits' must be an object")
    changes = {}
    for name, value in requested.items():
        if name not in REQUESTABLE:
            raise InvalidRequest(
                f"unknown or fixed limit {name!r}; a request may set: {', '.join(REQUESTABLE)}"
            )
        kind = LIMIT_FIELDS[name]
        ok_types = (int, float) if kind == "float" else (int,)
        if isinstance(value, bool) or not isinstance(value, ok_types):
            raise InvalidRequest(
                f"limit {name!r} must be a {'number' if kind == 'float' else 'whole number'}"
            )
        if not value > 0:  # NaN too
            raise InvalidRequest(f"limit {name!r} must be greater than 0, got {value}")
        maximum = policy.maximum(name)
        if maximum is not None and value > max(maximum, getattr(limits, name)):
            raise InvalidRequest(f"limit {name!r}={value} is above the maximum of {maximum}")
        changes[name] = value
    return dataclasses.replace(limits, **changes)


def _check_size(policy: LimitsPolicy, code: str, stdin: str, files: dict) -> None:
    size = len(code.encode()) + len(stdin.encode())
    size += sum(len(k.encode()) + len(_bytes(v)) for k, v in files.items())
    if size > policy.code_bytes:
        raise PayloadTooLarge(
            f"code, stdin and files are {size} bytes; the limit is {policy.code_bytes} bytes"
        )


def _bytes(content: str | bytes) -> bytes:
    return content.encode() if isinstance(content, str) else content


def _safe_file_name(name: str) -> bool:
    parts = name.split("/")
    return (
        bool(name)
        and not name.startswith("/")
        and ".." not in parts
        and "." not in parts  # ./main.py is the source file, ./.braindrill/ the job's
        and "" not in parts
        and parts[0] != JOB_DIR
        and "\0" not in name
        and len(name) <= 255
    )
