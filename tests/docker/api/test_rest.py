"""POST /lang/<language> and GET /lang over a real Jupyter server, on real containers (the
refusals of bad requests need no Docker Engine, they are answered before anything runs:
tests/unit/api/test_rest.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from tests.helpers import eventually, leftover_containers
from tests.helpers import sandbox_kinds as sandbox_kind  # noqa: F401 (a fixture: both kinds)
from tests.rest import HELLO


@pytest.mark.parametrize("language", sorted(HELLO))
async def test_hello_world_in_each_language(run, language):
    code, expected = HELLO[language]
    result = await run(language, code)
    assert result["status"] == "ok", result
    assert result["exit_code"] == 0
    assert result["stdout"] == expected
    assert result["language"] == language
    assert result["worker"] == "local"
    assert set(result) >= {
        "language",
        "status",
        "exit_code",
        "stdout",
        "stderr",
        "stdout_truncated",
        "stderr_truncated",
        "duration_ms",
        "worker",
    }


@pytest.mark.parametrize(
    "alias,language", [("py", "python"), ("js", "javascript"), ("node", "javascript")]
)
async def test_aliases(run, alias, language):
    result = await run(alias, HELLO[language][0])
    assert result["language"] == language
    assert result["stdout"] == "drill my brain\n"


async def test_stdin_args_and_files(run):
    code = (
        "import sys\n"
        "print(sys.stdin.read().upper(), end='')\n"
        "print(sys.argv[1:])\n"
        "print(open('data/input.txt').read())\n"
    )
    result = await run(
        "python",
        code,
        stdin="from stdin\n",
        args=["one", "two words"],
        files={"data/input.txt": "from a file"},
    )
    assert result["status"] == "ok", result
    assert result["stdout"] == "FROM STDIN\n['one', 'two words']\nfrom a file\n"


async def test_stdin_without_newline_and_empty_stdin(run):
    result = await run("python", "import sys; print(repr(sys.stdin.read()))", stdin="x")
    assert result["stdout"] == "'x'\n"
    result = await run("python", "import sys; print(repr(sys.stdin.read()))")
    assert result["stdout"] == "''\n"


async def test_nonzero_exit_is_error(run):
    result = await run("python", "import sys; print('bye', file=sys.stderr); sys.exit(3)")
    assert result["status"] == "error"
    assert result["exit_code"] == 3
    assert result["stderr"] == "bye\n"


async def test_infinite_loop_times_out(run):
    result = await run("python", "while True: pass", limits={"timeout_s": 1.5})
    assert result["status"] == "timeout"
    assert result["duration_ms"] < 1500 + 3000


async def test_memory_bomb_is_oom(run):
    result = await run("python", "x = []\nwhile True: x.append(bytearray(10 << 20))")
    assert result["status"] == "oom", result


async def test_output_flood_is_capped(run):
    cap = 4096
    result = await run("python", "while True: print('x' * 1000)", limits={"output_bytes": cap})
    assert result["status"] == "output_limit"
    assert result["stdout_truncated"] is True
    assert len(result["stdout"]) == cap
    assert set(result["stdout"]) <= {"x", "\n"}


async def test_text_plain(jp_fetch):
    response = await jp_fetch(
        "lang",
        "python",
        method="POST",
        headers={"Accept": "text/plain"},
        body="import sys; print('out'); print('err', file=sys.stderr); sys.exit(2)",
    )
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.headers["X-Braindrill-Status"] == "error"
    assert response.headers["X-Braindrill-Exit-Code"] == "2"
    assert response.body.decode() == "out\nerr\n"


async def test_event_stream(jp_fetch):
    code = "import sys, time\nfor i in range(3):\n"
    code += "    sys.stdout.write(f'{i}\\n')\n    time.sleep(0.2)\n"
    response = await jp_fetch(
        "lang", "python", method="POST", headers={"Accept": "text/event-stream"}, body=code
    )
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = []
    for block in response.body.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    chunks = [data["text"] for name, data in events if name == "stdout"]
    assert "".join(chunks) == "0\n1\n2\n"
    assert len(chunks) == 3  # streamed as produced, not in one piece at the end
    assert events[-1][0] == "result"
    assert events[-1][1]["status"] == "ok"


async def test_event_stream_arrives_while_running(
    http_server_client, http_server_port, jp_base_url, jp_auth_header
):
    """The first chunk reaches the client before the program ends."""
    url = f"http://127.0.0.1:{http_server_port[-1]}{jp_base_url}lang/python"
    loop = asyncio.get_running_loop()
    arrivals = []
    request = HTTPRequest(
        url,
        method="POST",
        headers={**jp_auth_header, "Accept": "text/event-stream"},
        body="import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second')\n",
        streaming_callback=lambda chunk: arrivals.append((loop.time(), chunk)),
        request_timeout=30,
    )
    await AsyncHTTPClient().fetch(request)
    first = next(t for t, chunk in arrivals if b"first" in chunk)
    last = arrivals[-1][0]
    assert last - first > 1.0


async def test_a_request_stopped_by_the_server_shutting_down_gets_a_503(jp_fetch, engine):
    """At shutdown the engine stops the executions still running and removes their sandboxes: a
    client still waiting is told so (503, send it again), not answered with an empty body."""
    waiting = asyncio.ensure_future(
        jp_fetch("lang", "python", method="POST", body="import time\ntime.sleep(60)")
    )
    assert await eventually(
        lambda: any(
            r.control.sandbox is not None and r.control.sandbox.running for r in engine._running
        )
    )
    await engine.stop()
    with pytest.raises(HTTPClientError) as raised:
        await asyncio.wait_for(waiting, 30)
    assert raised.value.code == 503
    assert "shutting down" in json.loads(raised.value.response.body)["message"]
    assert await eventually(lambda: not leftover_containers())


async def test_languages_listing(jp_fetch):
    response = await jp_fetch("lang")
    languages = {lang["name"]: lang for lang in json.loads(response.body)["languages"]}
    assert set(HELLO) <= set(languages)
    python = languages["python"]
    assert python["image_available"] is True
    assert python["version"].startswith("3.")
    assert python["limits"]["timeout_s"] == 10
    assert python["limits"]["memory_mib"] == 256
    assert python["max_limits"]["timeout_s"] == 60
    assert "py" in python["aliases"]
    assert languages["java"]["limits"]["memory_mib"] == 512  # from its kernelspec
    one = json.loads((await jp_fetch("lang", "js", "info")).body)
    assert one["name"] == "javascript"


async def test_client_disconnect_kills_the_container(jp_fetch):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch(
            "lang", "python", method="POST", body="while True: pass", request_timeout=1.5
        )
    assert e.value.code == 599  # the client gave up
    await eventually(lambda: not leftover_containers(include_pooled=False), 10)
    assert leftover_containers(include_pooled=False) == []


@pytest.mark.parametrize(
    "language, code",
    [
        ("python", "import sys\nsys.stderr.write('e' * 300000)\nsys.stdout.write('o' * 300000)"),
        (
            "bash",
            "head -c 300000 /dev/zero | tr '\\0' e >&2; head -c 300000 /dev/zero | tr '\\0' o",
        ),
    ],
)
async def test_output_written_just_before_exit_is_all_there(run, language, code):
    """The result is returned at the exit report, before the container stops: what the program
    wrote on either stream right before exiting is still all in it (the engine forwards the two
    streams independently, so one report alone would not tell)."""
    results = await asyncio.gather(*(run(language, code) for _ in range(12)))
    for result in results:
        assert result["status"] == "ok", result
        assert result["stdout"] == "o" * 300000 and result["stderr"] == "e" * 300000
