"""The MCP server on real containers, driven by the official SDK's own client against a real
Jupyter server, over both transports: streamable HTTP at ``/braindrill/mcp`` (with a user's
token, as REST), and ``braindrill-mcp`` over stdio forwarding to that server (run as ``python -m
braindrill_ext.mcp_stdio``, this checkout's). Listing the tools, a plot as image content, a
session carrying a variable, a binary file uploaded, used and downloaded, refusals as tool errors
with REST's messages; plus the stdio command with an embedded engine."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.helpers import ROOT
from tests.rest import TOKENS, TwoUsers, as_user, refused, run_as

CONFIG = {
    "ServerApp": {"identity_provider_class": TwoUsers},
    "WarmPools": {"enabled": False},
    "LimitsPolicy": {"max_timeout_s": 30.0},
}
TOOLS = {
    "run_code", "list_languages", "create_session", "end_session", "upload_file",
    "download_file", "list_files",
}  # fmt: skip
PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.show()\nprint('plotted')"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def braindrill_config():
    return CONFIG


@pytest.fixture(params=["http", "stdio"])
def connect(request, jp_fetch, jp_http_port, jp_base_url):
    """``connect(user)``: an MCP client of the test server as ``user``, over streamable HTTP or
    through ``braindrill-mcp`` over stdio. (``jp_fetch``: the test server listens.)"""
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    token = {name: t for t, name in TOKENS.items()}

    @contextlib.asynccontextmanager
    async def connect(user: str = "alice"):
        if request.param == "http":
            headers = {"Authorization": f"token {token[user]}"}
            async with create_mcp_http_client(headers=headers) as http:
                transport = streamable_http_client(url + "braindrill/mcp", http_client=http)
                async with Client(transport) as client:
                    yield client
            return
        env = {"BRAINDRILL_URL": url, "BRAINDRILL_TOKEN": token[user], "PYTHONPATH": str(ROOT)}
        command = StdioServerParameters(
            command=sys.executable, args=["-m", "braindrill_ext.mcp_stdio"], env=env
        )
        async with Client(command) as client:
            yield client

    return connect


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def call(client, name, **arguments) -> types.CallToolResult:
    result = await client.call_tool(name, arguments)
    assert not result.is_error, text_of(result)
    return result


async def test_the_tools_are_listed_with_schemas(connect):
    async with connect() as client:
        tools = (await client.list_tools()).tools
    assert {tool.name for tool in tools} == TOOLS
    for tool in tools:
        assert len(tool.description) > 40, tool.name
        assert tool.input_schema["type"] == "object"
    run = next(tool for tool in tools if tool.name == "run_code")
    assert run.input_schema["required"] == ["language", "code"]
    assert set(run.input_schema["properties"]) == {
        "language", "code", "session_id", "stdin", "limits",
    }  # fmt: skip


async def test_a_plot_comes_back_as_image_content(connect):
    async with connect() as client:
        result = await call(client, "run_code", language="python-data", code=PLOT)
    assert result.content[0].text.startswith("status: ok\nexit_code: 0\n--- stdout ---\nplotted")
    images = [c for c in result.content if isinstance(c, types.ImageContent)]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    assert base64.b64decode(images[0].data).startswith(PNG)


async def test_a_session_carries_a_variable_and_is_the_users(connect, jp_fetch):
    async with connect("alice") as client:
        made = await call(client, "create_session", language="py")
        sid = json.loads(made.content[0].text)["id"]
        await call(client, "run_code", language="python", code="x = 41", session_id=sid)
        result = await call(client, "run_code", language="python", code="print(x + 1)",
                            session_id=sid)  # fmt: skip
        assert "--- stdout ---\n42" in text_of(result)
    response = await jp_fetch("braindrill", "sessions", sid, headers=as_user("alice"))
    assert json.loads(response.body)["executions"] == 2  # alice's, over REST too
    async with connect("bob") as client:
        theirs = await client.call_tool("run_code", {"language": "python", "code": "print(x)",
                                                     "session_id": sid})  # fmt: skip
        assert theirs.is_error and "not yours" in text_of(theirs)
    async with connect("alice") as client:
        await call(client, "end_session", session_id=sid)
    code, _ = await refused(jp_fetch("braindrill", "sessions", sid, headers=as_user("alice")))
    assert code == 404


async def test_upload_run_download_a_binary_file(connect):
    blob = bytes(range(256)) * 8
    code = (
        "data = open('in/blob.bin', 'rb').read()\n"
        "open('out.bin', 'wb').write(data[::-1])\n"
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1, 2]); plt.savefig('chart.png')\nprint(len(data))"
    )
    async with connect() as client:
        sid = json.loads((await call(client, "create_session", language="python-data"))
                         .content[0].text)["id"]  # fmt: skip
        uploaded = await call(client, "upload_file", session_id=sid, path="in/blob.bin",
                              content_base64=base64.b64encode(blob).decode())  # fmt: skip
        assert json.loads(uploaded.content[0].text)["size"] == len(blob)
        ran = await call(client, "run_code", language="python-data", code=code, session_id=sid)
        assert "--- stdout ---\n2048" in text_of(ran)
        listed = json.loads((await call(client, "list_files", session_id=sid)).content[0].text)
        assert [f["path"] for f in listed] == ["chart.png", "in/blob.bin", "out.bin"]
        out = (await call(client, "download_file", session_id=sid, path="out.bin")).content
        assert isinstance(out[0], types.EmbeddedResource)
        assert base64.b64decode(out[0].resource.blob) == blob[::-1]
        chart = (await call(client, "download_file", session_id=sid, path="chart.png")).content
        assert isinstance(chart[0], types.ImageContent) and chart[0].mime_type == "image/png"
        assert base64.b64decode(chart[0].data).startswith(PNG)
        missing = await client.call_tool("download_file", {"session_id": sid, "path": "no.txt"})
        assert missing.is_error and "no file 'no.txt'" in text_of(missing)
        await call(client, "end_session", session_id=sid)


async def test_refusals_are_tool_errors_with_rests_messages(connect, jp_fetch):
    rest = [
        await refused(run_as(jp_fetch, "alice", "cobol", "x")),
        await refused(run_as(jp_fetch, "alice", "python", "x", limits={"timeout_s": 1000})),
    ]
    async with connect() as client:
        calls = [
            await client.call_tool("run_code", {"language": "cobol", "code": "x"}),
            await client.call_tool(
                "run_code", {"language": "python", "code": "x", "limits": {"timeout_s": 1000}}
            ),
        ]
        for result, (status, message) in zip(calls, rest, strict=True):
            assert result.is_error and text_of(result) == message, (status, message)
        assert "unknown language 'cobol'" in rest[0][1]
        assert "above the maximum of 30.0" in rest[1][1]
        bad = await client.call_tool("upload_file", {"session_id": "x", "path": "a"})
        assert bad.is_error and "'content_base64' is a required property" in text_of(bad)
        still = await call(client, "run_code", language="python", code="print('still here')")
        assert "still here" in text_of(still)  # the connection lives on


async def test_stdio_with_an_embedded_engine(tmp_path):
    (tmp_path / "jupyter_server_config.json").write_text(
        json.dumps({"WarmPools": {"enabled": False}})
    )
    env = {"PYTHONPATH": str(ROOT), "JUPYTER_CONFIG_DIR": str(tmp_path), "BRAINDRILL_URL": ""}
    env["JUPYTER_PATH"] = os.environ.get("JUPYTER_PATH", "")  # the test's kernelspecs
    command = StdioServerParameters(
        command=sys.executable, args=["-m", "braindrill_ext.mcp_stdio"], env=env
    )
    async with Client(command) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
        sid = json.loads((await call(client, "create_session", language="python"))
                         .content[0].text)["id"]  # fmt: skip
        await call(client, "run_code", language="python", code="x = 6", session_id=sid)
        result = await call(client, "run_code", language="python", code="print(x * 7)",
                            session_id=sid)  # fmt: skip
        assert "--- stdout ---\n42" in text_of(result)
