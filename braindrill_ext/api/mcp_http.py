"""The MCP endpoint of a Jupyter server: streamable HTTP at ``/braindrill/mcp``, behind Jupyter's
authentication as every REST route (``Authorization: token <t>``; requests with a token skip
XSRF, as Jupyter's API does).

The SDK's transport is an ASGI app and Jupyter runs on Tornado: ``MCPHandler`` bridges one
Tornado request to the SDK's ``StreamableHTTPSessionManager`` (stateless: every POST stands
alone, MCP sessions are not needed as Braindrill's own sessions carry state; a GET stream is not
offered, 405). The bridge hands the SDK the request's body, then blocks its ``receive()`` until
the client goes away (as an ASGI server does: a streaming response listens for the
disconnect); it forwards status and headers (flushed at once for an event stream), then the
body as it comes. The Jupyter user rides in the ASGI scope (``USER_KEY``) to the tools
(``mcp_tools.py``), so sessions made over MCP are that user's, as over REST.
"""

from __future__ import annotations

import asyncio
import contextlib

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from tornado import web

from .handlers import BraindrillHandler
from .mcp_tools import BraindrillTools

USER_KEY = "braindrill.user"  # the ASGI scope's key for the request's owner
MAX_BODY_BYTES = 96 << 20  # an upload_file of a state's default cap (64 MiB), in base64


class MCPEndpoint:
    """The MCP server of one Jupyter server: the tools over its engine and REST sessions, and
    the SDK's session manager that serves them. Made by the extension app, which stops it."""

    def __init__(self, engine, sessions):
        tools = BraindrillTools(engine, sessions, user_of=lambda ctx: ctx.request.scope[USER_KEY])
        self.manager = StreamableHTTPSessionManager(
            tools.server(), stateless=True, max_request_body_size=MAX_BODY_BYTES
        )
        self._task: asyncio.Task | None = None
        self._running = asyncio.Event()
        self._stop = asyncio.Event()

    async def ensure_started(self) -> None:
        """Run the session manager (its task group) on the server's loop, once. Called by the
        handler before the first request."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._serve())
        await self._running.wait()

    async def _serve(self) -> None:
        async with self.manager.run():
            self._running.set()
            await self._stop.wait()

    async def stop(self) -> None:
        """Stop the session manager. Called by the extension app at shutdown."""
        if self._task is not None:
            self._stop.set()
            with contextlib.suppress(Exception):
                await self._task
            self._task = None

    async def handle(self, scope, receive, send) -> None:
        await self.ensure_started()
        await self.manager.handle_request(scope, receive, send)


class MCPHandler(BraindrillHandler):
    """``/braindrill/mcp``: one MCP request (POST, or GET/DELETE, which a stateless server
    refuses with 405), served by the SDK through an ASGI bridge."""

    _gone: asyncio.Event | None = None

    @property
    def endpoint(self) -> MCPEndpoint:
        return self.settings["braindrill_mcp"]

    @web.authenticated
    @authorized
    async def post(self):
        await self._bridge()

    @web.authenticated
    @authorized
    async def get(self):
        await self._bridge()

    @web.authenticated
    @authorized
    async def delete(self):
        await self._bridge()

    def on_connection_close(self):
        if self._gone is not None:
            self._gone.set()

    async def _bridge(self) -> None:
        request, self._gone = self.request, asyncio.Event()
        host, _, port = request.host.partition(":")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.version.removeprefix("HTTP/"),
            "method": request.method,
            "scheme": request.protocol,
            "path": request.path,
            "raw_path": request.path.encode("latin-1"),
            "root_path": "",
            "query_string": request.query.encode("latin-1"),
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in request.headers.get_all()
            ],
            "client": (request.remote_ip, 0),
            "server": (host, int(port) if port.isdigit() else None),
            USER_KEY: self.owner,
        }
        body = [request.body]

        async def receive():
            if body:
                return {"type": "http.request", "body": body.pop(), "more_body": False}
            await self._gone.wait()  # the client went away, or the answer is complete
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                self.set_status(message["status"])
                self.clear_header("Content-Type")
                for name, value in message.get("headers", []):
                    self.add_header(name.decode("latin-1"), value.decode("latin-1"))
                if self._headers.get("Content-Type", "").startswith("text/event-stream"):
                    await self.flush()  # the client reads the stream as it comes
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    self.write(message["body"])
                if message.get("more_body"):
                    await self.flush()
                elif not self._finished:
                    self.update_api_activity()
                    super(APIHandler, self).finish()  # not APIHandler's: its Content-Type stays
                    self._gone.set()

        try:
            await self.endpoint.handle(scope, receive, send)
        finally:
            self._gone.set()
        if not self._finished:  # the SDK sent no complete answer
            self.update_api_activity()
            super(APIHandler, self).finish()


default_handlers = [(r"/braindrill/mcp/?", MCPHandler)]
