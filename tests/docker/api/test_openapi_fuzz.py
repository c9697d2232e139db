"""The REST API's contract, fuzzed: schemathesis generates requests from the document a live
``jupyter server`` process serves (``GET /braindrill/openapi.json``), positive and negative data,
and checks every answer: no 5xx but a 503 with Retry-After; every status, content type, header and
body as described. (The document itself: tests/unit/api/test_openapi.py.)"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import eventually_sync, free_port, leftover_containers
from tests.openapi import DOC

FUZZ_TOKEN = "braindrill-fuzz-token"
FUZZ_CONFIG = [
    # Short executions: generated limits cannot be bounded, the operator's maxima can.
    "--LimitsPolicy.timeout_s=2",
    "--LimitsPolicy.max_timeout_s=3",
    "--LimitsPolicy.compile_timeout_s=5",
    "--LimitsPolicy.max_compile_timeout_s=5",
    "--LimitsPolicy.max_memory_mib=256",
    "--LimitsPolicy.max_compile_memory_mib=512",
    "--ExecutionEngine.queue_size=2",
    "--ExecutionEngine.queue_timeout_s=10",
]
FUZZ_LANGUAGES = ("python", "bash", "c")  # real runtimes, beside the generated (unknown) names


def import_schemathesis_now() -> None:
    """Schemathesis imports most of itself on first use, and as a pytest plugin its modules are
    assertion-rewritten (``ast.parse``) by pytest when imported. Done inside a test, while other
    threads of earlier tests run, CPython 3.11 failed that once in CI with "SystemError: AST
    constructor recursion depth mismatch" (python/cpython#106905: the AST converter's depth
    counter is interpreter-wide). So it is done here, at collection, while no other thread runs:
    load this document and build every operation's strategies, as the fuzz test will."""
    import schemathesis.generation.body_overrides  # used only when drawing
    import schemathesis.generation.dictionaries
    import schemathesis.transport.requests  # used only when calling

    config = schemathesis.Config.from_dict({"base-url": "http://127.0.0.1:1"})
    for operation in schemathesis.openapi.from_dict(DOC, config=config).get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            operation.ok().as_strategy(generation_mode=mode)


import_schemathesis_now()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """A real ``jupyter server`` process with Braindrill (schemathesis is synchronous, the
    in-process server of pytest-jupyter runs on the test's loop). Stopped at the end; none of
    its containers may be left."""
    home = tmp_path_factory.mktemp("fuzz-server")
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_DATA_DIR": str(home / "data"),
    }
    argv = [
        *(sys.executable, "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1"),
        *("--ServerApp.open_browser=False", "--ServerApp.allow_root=True"),
        f"--ServerApp.root_dir={home}",
        f"--IdentityProvider.token={FUZZ_TOKEN}",
        *FUZZ_CONFIG,
    ]
    log = open(home / "server.log", "wb")  # closed at teardown
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"

    def up():
        try:
            auth = {"Authorization": f"token {FUZZ_TOKEN}"}
            return requests.get(url + "braindrill/workers", headers=auth, timeout=5).ok
        except requests.ConnectionError:
            return proc.poll() is not None

    try:
        assert eventually_sync(up, 60) and proc.poll() is None, (home / "server.log").read_text()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        assert eventually_sync(lambda: not leftover_containers(pid=proc.pid), 30)
        assert leftover_containers(pid=proc.pid) == []


@pytest.fixture(scope="module")
def api_schema(live_server):
    """The served document, loaded by schemathesis, with the token on every request."""
    config = schemathesis.Config.from_dict(
        {
            "base-url": live_server.rstrip("/"),
            "headers": {"Authorization": f"token {FUZZ_TOKEN}"},
            "request-timeout": 60,
            "generation": {"mode": "all"},
        }
    )
    return schemathesis.openapi.from_url(live_server + "braindrill/openapi.json", config=config)


def not_a_server_error_but_503_with_retry_after(ctx, response, case):
    """Schemathesis' not_a_server_error, but a 503 saying when to come back is an answer."""
    if response.status_code >= 500:
        retry_after = response.headers.get("retry-after", [""])[0]
        assert response.status_code == 503 and retry_after.isdigit(), (
            f"{response.status_code} (Retry-After: {retry_after!r}): {response.text[:500]}"
        )


FUZZ_CHECKS = [
    not_a_server_error_but_503_with_retry_after,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FUZZ_EXAMPLES = 15  # per operation and generation mode


@pytest.mark.timeout(600)
def test_fuzz_the_live_server(api_schema):
    """Property-based, from the served document: every operation, positive and negative data.
    A POST mostly goes to a real language (``language``; None keeps the generated name).
    Hypothesis drives schemathesis' strategies directly: its pytest plugin does not run under
    pytest 9 (it reads ``Node._nodeid``, which pytest 9 no longer has)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    calls: collections.Counter = collections.Counter()
    assert {(op.method.upper(), op.path) for op in operations} >= {("POST", "/lang/{language}")}
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(
                case=op.as_strategy(generation_mode=mode),
                language=st.one_of(st.sampled_from(FUZZ_LANGUAGES), st.none()),
            )
            @settings(
                max_examples=FUZZ_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case, language):
                if language is not None and "language" in (case.path_parameters or {}):
                    case.path_parameters["language"] = language
                started = time.monotonic()
                calls[case.method.upper(), case.path] += 1
                case.call_and_validate(checks=FUZZ_CHECKS)
                assert time.monotonic() - started < 60

            call()
    print("schemathesis calls:", dict(calls))
    # Hypothesis stops early only where the inputs run out (a GET without parameters).
    assert calls["POST", "/lang/{language}"] >= 2 * FUZZ_EXAMPLES
