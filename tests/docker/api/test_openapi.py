"""The REST API's contract on real containers: real answers of a server that runs code (languages
and worker hosts, results of every status, text/plain and event streams, REST sessions' results)
conform to ``braindrill_ext/api/openapi.json``. (The document itself and the answers given before
anything runs: tests/unit/api/test_openapi.py; fuzzing: test_openapi_fuzz.py.)"""

from __future__ import annotations

import json

import pytest

from tests.openapi import OPENAPI_SERVER_CONFIG, SESSION, check_answer, fetch_error

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def braindrill_config():
    return OPENAPI_SERVER_CONFIG


async def test_languages_and_workers_conform(jp_fetch):
    response = await jp_fetch("lang")
    languages = check_answer("/lang", "get", 200, response.headers, response.body)
    assert {lang["name"] for lang in languages["languages"]} >= {"python", "c"}
    for name in ("python", "PY", "c"):
        response = await jp_fetch("lang", name, "info")
        check_answer("/lang/{language}/info", "get", 200, response.headers, response.body)
    code, headers, body = await fetch_error(jp_fetch("lang", "cobol", "info"))
    assert code == 404
    check_answer("/lang/{language}/info", "get", code, headers, body)
    response = await jp_fetch("braindrill", "workers")
    workers = check_answer("/braindrill/workers", "get", 200, response.headers, response.body)
    assert workers["workers"][0]["name"] == "local"


RUNS = {
    "ok": ("python", {"code": "print('hi')"}),
    "ok-everything": (
        "python",
        {
            "code": "import sys; print(open('d/f.txt').read(), sys.argv[1:], input())",
            "stdin": "typed\n",
            "args": ["-v"],
            "files": {"d/f.txt": "a file"},
            "limits": {"timeout_s": 3, "memory_mib": 128, "cpus": 0.5},
            "interactive": False,
        },
    ),
    "error": ("python", {"code": "import sys; print('x', file=sys.stderr); sys.exit(3)"}),
    "timeout": ("python", {"code": "import time; time.sleep(30)", "limits": {"timeout_s": 1}}),
    "output_limit": ("python", {"code": "print('x' * 5000)", "limits": {"output_bytes": 100}}),
    "compile_error": ("c", {"code": "int main( { return 0; }"}),
    "c-ok": ("c", {"code": '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }'}),
    "cell": (
        "python",
        {
            "code": "from IPython.display import display, HTML, clear_output\n"
            "h = display(HTML('<b>x</b>'), display_id=True)\nh.update(HTML('<i>y</i>'))\n"
            "clear_output(wait=True)\n6 * 7",
            "interactive": True,
        },
    ),
    "cell-error": ("python", {"code": "print(1)\n1 / 0", "interactive": True}),
}
STATUS_OF = {"ok-everything": "ok", "c-ok": "ok", "cell": "ok", "cell-error": "error"}


@pytest.mark.parametrize("name", sorted(RUNS))
async def test_results_conform(jp_fetch, name):
    language, request = RUNS[name]
    response = await jp_fetch(
        "lang", language, method="POST", body=json.dumps(request), headers=JSON
    )
    result = check_answer("/lang/{language}", "post", 200, response.headers, response.body)
    assert result["status"] == STATUS_OF.get(name, name), result
    if name == "cell":
        kinds = [o["output_type"] for o in result["outputs"]]
        assert kinds == ["display_data", "update_display_data", "clear_output", "execute_result"]
    if name == "cell-error":
        assert result["error"]["ename"] == "ZeroDivisionError"


async def test_text_plain_and_event_stream_answers_conform(jp_fetch):
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)"
    response = await jp_fetch(
        "lang", "python", method="POST", body=code, headers={"Accept": "text/plain"}
    )
    text = check_answer("/lang/{language}", "post", 200, response.headers, response.body)
    assert text == "out\nerr\n"
    assert response.headers["X-Braindrill-Status"] == "error"
    assert response.headers["X-Braindrill-Exit-Code"] == "4"
    request = {
        "code": "from IPython.display import display, Markdown\nprint('a')\n"
        "display(Markdown('*m*'))\n1 / 0",
        "interactive": True,
    }
    response = await jp_fetch(
        "lang",
        "python",
        method="POST",
        body=json.dumps(request),
        headers={**JSON, "Accept": "text/event-stream"},
    )
    events = check_answer("/lang/{language}", "post", 200, response.headers, response.body)
    names = [e for e, _ in events]  # a stream may come in several chunks: each its own event
    assert [n for i, n in enumerate(names) if not i or names[i - 1] != n] == [
        "stdout",
        "display",
        "result",
    ]
    assert "".join(d["text"] for e, d in events if e == "stdout") == "a\n"
    assert events[-1][1]["error"]["ename"] == "ZeroDivisionError"


async def test_session_results_conform(jp_fetch):
    response = await jp_fetch(
        "braindrill", "sessions", method="POST", body='{"language": "python"}', headers=JSON
    )
    sid = json.loads(response.body)["id"]
    for request in [
        {"code": "x = 6 * 7", "session": sid},
        {"code": "x", "session": sid, "interactive": True, "limits": {"state_mib": 1}},
        {"code": "import time; x = 0; time.sleep(9)", "session": sid, "limits": {"timeout_s": 1}},
    ]:
        response = await jp_fetch(
            "lang", "python", method="POST", body=json.dumps(request), headers=JSON
        )
        result = check_answer("/lang/{language}", "post", 200, response.headers, response.body)
    assert result["status"] == "timeout" and result["state_message"]
    response = await jp_fetch("braindrill", "sessions", sid)
    session = check_answer(SESSION, "get", 200, response.headers, response.body)
    assert session["executions"] == 3 and session["state_bytes"] > 0
