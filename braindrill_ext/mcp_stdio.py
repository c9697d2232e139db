"""``braindrill-mcp``: Braindrill's MCP server over stdio, for local agent clients (desktop
assistants, agent frameworks) that start their MCP servers as commands.

Two ways, one set of tools (``api/mcp_tools.py``):

- **forwarding** (``--url`` or ``BRAINDRILL_URL``): a proxy to a Braindrill server's MCP endpoint
  (``<url>/braindrill/mcp``, streamable HTTP) with its token (``--token``, ``BRAINDRILL_TOKEN``
  or ``JUPYTER_TOKEN``): tools, sessions and limits are the server's, for the token's user;
- **embedded** (no URL): the tools over an engine of this process on the local Docker Engine,
  configured by the Jupyter config files a server reads (as a script's kernels are,
  ``kernel/embedded.py``); its sessions are the process's and end with it, and every container
  it made is removed at exit.

The process's owner, as ``app.py`` is a server's: it assembles the layers and owns the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import getpass
import os
import sys

import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared._httpx_utils import create_mcp_http_client

from . import __version__
from .api.mcp_tools import INSTRUCTIONS, BraindrillTools
from .api.sessions import RestSessionManager
from .engine import ExecutionEngine
from .kernel.embedded import read_jupyter_config

ENDPOINT = "braindrill/mcp"


def main(argv: list[str] | None = None) -> None:
    """The ``braindrill-mcp`` console script (``[project.scripts]``)."""
    parser = argparse.ArgumentParser(
        prog="braindrill-mcp", description="Braindrill's MCP server over stdio."
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("BRAINDRILL_URL", ""),
        help="A Braindrill (Jupyter) server's URL, with its base_url, e.g. "
        "http://127.0.0.1:8888/ (default: $BRAINDRILL_URL). Without one: an embedded engine on "
        "the local Docker Engine.",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("BRAINDRILL_TOKEN") or os.environ.get("JUPYTER_TOKEN", ""),
        help="The server's token (default: $BRAINDRILL_TOKEN, else $JUPYTER_TOKEN).",
    )
    options = parser.parse_args(argv)
    if options.url:
        asyncio.run(forward(options.url, options.token))
    else:
        asyncio.run(embedded())


async def serve(server: Server) -> None:
    """Serve ``server`` on this process's stdin and stdout until the client closes them."""
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


# -- forwarding to a server -------------------------------------------------------------------
async def forward(url: str, token: str) -> None:
    """Serve the tools of the server at ``url`` (its MCP endpoint) as they are: the listing
    and every call go to it; an error of the server's (a wrong token, no answer) is a tool
    error that says so."""
    headers = {"Authorization": f"token {token}"} if token else {}
    endpoint = url.rstrip("/") + "/" + ENDPOINT
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
        remote = await stack.enter_async_context(
            Client(streamable_http_client(endpoint, http_client=http))
        )

        async def list_tools(ctx, params) -> types.ListToolsResult:
            return await remote.list_tools()

        async def call_tool(ctx, params) -> types.CallToolResult:
            try:
                return await remote.call_tool(params.name, params.arguments or {})
            except Exception as e:  # the server's refusal of the request itself, or no server
                message = f"the Braindrill server at {url} failed the call: {e or type(e).__name__}"
                return types.CallToolResult(
                    content=[types.TextContent(text=message)], is_error=True
                )

        server = Server(
            "braindrill",
            version=__version__,
            instructions=INSTRUCTIONS,
            on_list_tools=list_tools,
            on_call_tool=call_tool,
        )
        await serve(server)


# -- an embedded engine -----------------------------------------------------------------------
async def embedded() -> None:
    """Serve the tools over an engine of this process; stop it (its containers removed) when
    the client goes away."""
    config = read_jupyter_config()
    engine = ExecutionEngine(config=config)
    atexit.register(engine.remove_own_containers)  # whatever stops the process
    sessions = RestSessionManager(config=config, engine=engine)
    user = getpass.getuser()
    tools = BraindrillTools(engine, sessions, user_of=lambda ctx: user)
    try:
        await serve(tools.server())
    finally:
        await sessions.stop()
        await engine.stop()
        removed = engine.remove_own_containers()
        if removed:
            print(f"braindrill-mcp: removed {removed} container(s)", file=sys.stderr)


if __name__ == "__main__":
    main()
