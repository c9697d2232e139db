"""``braindrill_ext.engine.validation``: what a REST body or a kernel cell may ask, checked without
Docker (pure logic; the same refusals over HTTP are in tests/unit/api/test_rest.py, over a kernel in
tests/docker/kernel/test_kernels.py)."""

from __future__ import annotations

import base64
import io
import json
import tarfile

import pytest

from braindrill_ext.engine.validation import (
    JSON_FIELDS,
    make_execution,
    parse_body,
    parse_session_body,
)
from braindrill_ext.errors import InvalidRequest, PayloadTooLarge, UnknownLanguage
from braindrill_ext.execution import Limits
from braindrill_ext.sandbox.payload import Tokens, build_payload
from braindrill_ext.sandbox.protocol import JOB_DIR, JOB_STATE_MAX, STATE_ONLY

from .sample_requests import PYTHON, REGISTRY, make


# -- parse_body ------------------------------------------------------------------------------------
def test_a_plain_body_is_the_code(policy):
    assert parse_body(b"print('h\xc3\xa9')", "", policy.code_bytes) == {"code": "print('hé')"}
    assert parse_body(b"{not json", "text/plain", policy.code_bytes) == {"code": "{not json"}


@pytest.mark.parametrize("body", [b"", b"   ", b"\n\t\n"])
def test_an_empty_plain_body_is_refused(policy, body):
    with pytest.raises(InvalidRequest, match="the body is empty"):
        parse_body(body, "text/plain", policy.code_bytes)


@pytest.mark.parametrize("content_type", ["", "application/json"])
def test_a_body_that_is_not_utf8_is_refused(policy, content_type):
    with pytest.raises(InvalidRequest, match="not valid UTF-8"):
        parse_body(b"\xff\xfe", content_type, policy.code_bytes)


@pytest.mark.parametrize("body", [b"{not json", b'{"code": "1",}', b"", b'{"code": "1"} x'])
def test_malformed_json_is_refused(policy, body):
    with pytest.raises(InvalidRequest, match="malformed JSON body"):
        parse_body(body, "application/json", policy.code_bytes)


@pytest.mark.parametrize("body", [b'["print(1)"]', b'"print(1)"', b"null", b"42"])
def test_json_that_is_not_an_object_is_refused(policy, body):
    with pytest.raises(InvalidRequest, match="must be an object with at least 'code'"):
        parse_body(body, "application/json", policy.code_bytes)


def test_unknown_fields_are_refused(policy):
    with pytest.raises(InvalidRequest, match=r"unknown fields \['bogus', 'timeout'\]") as e:
        parse_body(
            b'{"code": "1", "bogus": 1, "timeout": 2}', "application/json", policy.code_bytes
        )
    assert str(list(JSON_FIELDS)) in str(e.value)


def test_json_without_code_is_refused(policy):
    with pytest.raises(InvalidRequest, match="needs 'code'"):
        parse_body(b'{"stdin": "x"}', "application/json", policy.code_bytes)


def test_json_fields_are_given_as_sent(policy):
    data = {
        "code": "print(1)",
        "stdin": "in",
        "args": ["a"],
        "files": {"f": "x"},
        "limits": {"timeout_s": 1},
        "interactive": True,
        "session": "0123abcd",
        "return_files": ["*.png"],
        "packages": ["tabulate==0.9.0"],
    }
    assert set(data) == set(JSON_FIELDS)
    assert parse_body(json.dumps(data).encode(), "application/json", policy.code_bytes) == data


@pytest.mark.parametrize("session", [None, "abc"])
def test_a_session_is_an_id_or_null(policy, session):
    body = json.dumps({"code": "1", "session": session}).encode()
    assert parse_body(body, "application/json", policy.code_bytes)["session"] == session


@pytest.mark.parametrize("session", ["", 1, True, ["abc"], {"id": "abc"}])
def test_a_session_that_is_not_an_id_is_refused(policy, session):
    body = json.dumps({"code": "1", "session": session}).encode()
    with pytest.raises(InvalidRequest, match="'session' must be a session id"):
        parse_body(body, "application/json", policy.code_bytes)


def test_a_plain_body_has_no_session(policy):
    body = b'{"code": "1", "session": "abc"}'
    assert parse_body(body, "text/plain", policy.code_bytes) == {"code": body.decode()}


def test_make_execution_takes_no_session(policy):
    """The handler takes the session out; kernels never pass one."""
    with pytest.raises(TypeError):
        make(policy, session="abc")
    assert make(policy).state is None  # stateless unless a session's run restores one


# -- parse_session_body ----------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b'{"language": "python"}', b'{"language": "PY"}\n'])
def test_a_session_body_names_a_language(body):
    assert parse_session_body(body) == json.loads(body)["language"]


@pytest.mark.parametrize(
    "body,message",
    [
        (b"", "must be JSON"),
        (b"python", "must be JSON"),
        (b"\xff", "must be JSON"),
        (b'["python"]', "must be an object with 'language'"),
        (b"{}", "'language' must be"),
        (b'{"language": ""}', "'language' must be"),
        (b'{"language": 3}', "'language' must be"),
        (
            b'{"language": "python", "code": "1"}',
            r"unknown fields \['code'\]; allowed: \['language'\]",
        ),
        (b'{"language": "' + b"x" * 5000 + b'"}', "at most 4096"),
    ],
)
def test_a_bad_session_body_is_refused(body, message):
    with pytest.raises(InvalidRequest, match=message):
        parse_session_body(body)


def test_a_plain_body_over_the_code_limit_is_too_large(policy):
    policy.code_bytes = 100
    assert parse_body(b"#" * 100, "", policy.code_bytes) == {"code": "#" * 100}
    with pytest.raises(PayloadTooLarge, match="101 bytes; the code limit is 100 bytes"):
        parse_body(b"#" * 101, "", policy.code_bytes)


def test_a_json_body_may_be_four_times_the_code_limit(policy):
    """JSON escapes may grow the text; make_execution checks the decoded size."""
    policy.code_bytes = 100
    body = json.dumps({"code": "\n" * 190}).encode()  # 390 bytes, "\\n" each
    assert len(body) <= 400
    assert parse_body(body, "application/json", policy.code_bytes)["code"] == "\n" * 190
    with pytest.raises(PayloadTooLarge, match="the code limit is 100 bytes"):
        parse_body(b" " * 401, "application/json", policy.code_bytes)


# -- make_execution --------------------------------------------------------------------------------
def test_an_execution_with_everything(policy):
    execution = make(
        policy,
        "print(1)",
        language="py",
        stdin="in",
        args=["a b", "--c"],
        files={"data/input.txt": "x", ".hidden": "y", "main.c": "not the source here"},
        limits={"timeout_s": 2},
        interactive=True,
        execution_count=7,
    )
    assert execution.language is PYTHON
    assert (execution.code, execution.stdin, execution.args) == ("print(1)", "in", ["a b", "--c"])
    assert execution.files == {
        "data/input.txt": "x",
        ".hidden": "y",
        "main.c": "not the source here",
    }
    assert execution.limits == Limits(timeout_s=2)
    assert execution.interactive is True and execution.execution_count == 7


def test_defaults_of_an_execution(policy):
    execution = make(policy)
    assert (execution.stdin, execution.args, execution.files) == ("", [], {})
    assert execution.interactive is False and execution.limits == Limits()


def test_an_unknown_language_names_the_known_ones(policy):
    with pytest.raises(
        UnknownLanguage, match="unknown language 'cobol'; known languages: c, python"
    ):
        make(policy, language="cobol")


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"code": 42}, "'code' must be a string"),
        ({"code": None}, "'code' must be a string"),
        ({"stdin": b"x"}, "'stdin' must be a string"),
        ({"stdin": None}, "'stdin' must be a string"),
        ({"args": "a b"}, "'args' must be a list of strings"),
        ({"args": ["a", 1]}, "'args' must be a list of strings"),
        ({"args": {"a": "b"}}, "'args' must be a list of strings"),
        ({"files": ["a"]}, "'files' must be an object of file name"),
        ({"files": {"a": 1}}, "'files' must be an object of file name"),
        ({"files": {"a": None}}, "'files' must be an object of file name"),
        ({"interactive": "yes"}, "'interactive' must be true or false"),
        ({"interactive": 1}, "'interactive' must be true or false"),
    ],
)
def test_wrong_types_of_fields_are_refused(policy, fields, needle):
    fields = {"code": "print(1)", **fields}
    with pytest.raises(InvalidRequest, match=needle):
        make_execution(REGISTRY, policy, "python", **fields)


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "a/../../x",
        "..",
        "/etc/passwd",
        "/work/x",
        ".braindrill/x",
        ".braindrill/job",
        ".braindrill",
        "main.py",
        "",
        "a//b",
        "a/",
        "x\0y",
        "n" * 256,
    ],
)
def test_bad_file_names_are_refused(policy, name):
    with pytest.raises(InvalidRequest, match="bad file name") as e:
        make(policy, files={name: "x"})
    assert "'main.py'" in str(e.value) and ".braindrill/" in str(e.value)


@pytest.mark.parametrize("name", ["./.braindrill/job", "./.braindrill", "./main.py"])
def test_a_dot_component_does_not_get_round_the_file_name_rules(policy, name):
    """``./.braindrill/job`` is under the reserved directory and ``./main.py`` is the source file,
    whatever the spelling; ``./.braindrill`` as a file makes the payload impossible to unpack."""
    with pytest.raises(InvalidRequest, match="bad file name"):
        make(policy, files={name: "x"})


def test_the_source_file_is_the_languages(policy):
    with pytest.raises(InvalidRequest, match=r"not 'main\.c'"):
        make(policy, "int main(void) { return 0; }", language="c", files={"main.c": "x"})
    assert make(policy, language="c", files={"main.py": "x"}).files == {"main.py": "x"}


@pytest.mark.parametrize(
    "name", ["data/input.txt", "a/b/c/d.txt", ".hidden", "main.py.bak", "n" * 255]
)
def test_good_file_names(policy, name):
    assert make(policy, files={name: "x"}).files == {name: "x"}


def test_code_stdin_and_files_together_are_capped_in_utf8_bytes(policy):
    policy.code_bytes = 20
    assert make(policy, "é" * 5, stdin="12345", files={"ab": "cde"}).code == "é" * 5  # 10+5+5
    with pytest.raises(PayloadTooLarge, match="21 bytes; the limit is 20 bytes"):
        make(policy, "é" * 5, stdin="12345", files={"ab": "cdef"})
    with pytest.raises(PayloadTooLarge):
        make(policy, "x" * 21)


def test_limits_are_resolved_for_the_language(policy):
    assert make(policy, language="c").limits.memory_mib == 512
    with pytest.raises(InvalidRequest, match="unknown or fixed limit 'pids'"):
        make(policy, limits={"pids": 9000})


def test_binary_files_come_as_base64_beside_text_files(policy):
    blob = bytes(range(256))
    files = {"data.xlsx": {"base64": base64.b64encode(blob).decode()}, "a.txt": "é"}
    execution = make_execution(REGISTRY, policy, "python", "print(1)", files=files)
    assert execution.files == {"data.xlsx": blob, "a.txt": "é"}
    payload = b"".join(build_payload(execution, execution.limits, Tokens()))
    with tarfile.open(fileobj=io.BytesIO(payload.split(b"\n", 1)[1])) as tar:
        assert tar.extractfile("data.xlsx").read() == blob
        assert tar.extractfile("a.txt").read() == "é".encode()


@pytest.mark.parametrize(
    "value, needle",
    [
        ({"base64": "not base64!"}, "'base64' is not valid base64"),
        ({"base64": 3}, "'base64' is not valid base64"),
        ({"base64": "", "text": "x"}, "'files' must be an object of file name"),
        ({}, "'files' must be an object of file name"),
    ],
)
def test_bad_binary_files_are_refused(policy, value, needle):
    with pytest.raises(InvalidRequest, match=needle):
        make_execution(REGISTRY, policy, "python", "print(1)", files={"f": value})


def test_binary_files_count_their_bytes_against_code_bytes(policy):
    policy.code_bytes = 1000
    files = {"f": {"base64": base64.b64encode(bytes(999)).decode()}}
    with pytest.raises(PayloadTooLarge, match="are 1008 bytes"):
        make_execution(REGISTRY, policy, "python", "print(1)", files=files)


def test_return_files_are_checked_and_ask_a_state_of_those_files_only(policy):
    execution = make_execution(
        REGISTRY, policy, "python", "1", return_files=["*.png"], limits={"return_files_bytes": 9}
    )
    assert execution.return_files == ["*.png"] and execution.limits.return_files_bytes == 9
    payload = b"".join(build_payload(execution, execution.limits, Tokens()))
    header, body = payload.split(b"\n", 1)
    assert b" " not in header  # nothing restored: a stateless request
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.extractfile(STATE_ONLY).read() == b"*.png\n"
        job = tar.extractfile(f"{JOB_DIR}/job").read().decode()
    assert f"{JOB_STATE_MAX}={(execution.limits.workdir_mib << 21) + (1 << 20)}" in job
    for bad in ("*.png", ["../*"], ["/x"]):
        with pytest.raises(InvalidRequest, match="return_files"):
            make_execution(REGISTRY, policy, "python", "1", return_files=bad)
