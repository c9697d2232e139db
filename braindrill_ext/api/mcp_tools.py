"""Braindrill's MCP tools: what an agent gets over the Model Context Protocol, built on the
official SDK's low-level ``mcp.server.Server``. They mirror REST and call what its handlers call
(the engine's public API, ``RestSessionManager``): a run is ``POST /lang/<language>``, a session
is a REST session of the same user, a file is a session's file. A refusal is a tool error
(``isError``) whose text is REST's error message, never a dropped connection.

Served by ``mcp_http.py`` (streamable HTTP at ``/braindrill/mcp``) and by ``mcp_stdio.py`` with
an embedded engine; ``user_of(ctx)`` tells whose request a call is.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
from collections.abc import Callable

import mcp_types as types
from jsonschema import Draft202012Validator
from mcp.server.lowlevel import Server

from .. import __version__
from ..errors import BraindrillError, NoCapacity, TooManyRequests
from ..execution import Result
from . import views

IMAGES = ("image/png", "image/jpeg")  # outputs that become image content
TEXTS = ("text/markdown", "text/plain", "application/json", "text/html", "image/svg+xml")
INSTRUCTIONS = (
    "Braindrill runs code in fresh, resource-limited sandboxes (no network). Call list_languages "
    "first. For several steps that share variables or files, create_session and pass its id to "
    "run_code; move files in and out with upload_file, list_files and download_file; "
    "end_session when done."
)

SESSION_ID = {"type": "string", "minLength": 1, "description": "A session id (create_session)."}
PATH = {
    "type": "string",
    "minLength": 1,
    "description": "A path relative to the session's work directory, e.g. 'data.csv' or "
    "'out/chart.png' (not absolute, no '..', not under .braindrill/).",
}


def _tool(name, description, properties, required, read_only=False) -> types.Tool:
    schema = {"type": "object", "properties": properties, "required": required}
    schema["additionalProperties"] = False
    hints = types.ToolAnnotations(read_only_hint=read_only, open_world_hint=False)
    return types.Tool(name=name, description=description, input_schema=schema, annotations=hints)


TOOLS = [
    _tool(
        "run_code",
        "Run a program in a fresh sandbox and get its status, stdout and stderr, and its plots "
        "as images. Each run starts clean unless it names a session_id: then it starts from "
        "the session's files (and, for Python, variables) and leaves its own for the next run. "
        "Statuses: ok, error (non-zero exit), compile_error, timeout, oom, output_limit, "
        "worker_lost, internal_error. Python runs as a script: print what you want to see, "
        "plt.show() or savefig() for plots.",
        {
            "language": {
                "type": "string",
                "description": "A language name or alias from list_languages, e.g. 'python', "
                "'python-data' (numpy, pandas, matplotlib), 'javascript', 'c'.",
            },
            "code": {"type": "string", "description": "The whole program's source."},
            "session_id": {**SESSION_ID, "description": "Run in this session (optional)."},
            "stdin": {"type": "string", "description": "Text given on standard input."},
            "limits": {
                "type": "object",
                "description": 'Optional limits, e.g. {"timeout_s": 30, "memory_mib": 512}; '
                "also cpus, output_bytes, display_bytes, state_mib, compile_timeout_s. Above "
                "the operator's maximum is refused.",
                "additionalProperties": {"type": "number"},
            },
        },
        ["language", "code"],
    ),
    _tool(
        "list_languages",
        "The languages run_code accepts, with their aliases and default limits.",
        {},
        [],
        read_only=True,
    ),
    _tool(
        "create_session",
        "Start a session: state (files, and Python variables) carried from one run_code to the "
        "next in one language. Returns its id. Sessions expire when unused for a while.",
        {"language": {"type": "string", "description": "The session's language (or alias)."}},
        ["language"],
    ),
    _tool(
        "end_session",
        "End a session and drop its files and variables.",
        {"session_id": SESSION_ID},
        ["session_id"],
    ),
    _tool(
        "upload_file",
        "Write a file (any bytes, base64-encoded) into a session's work directory, where its "
        "next run_code finds it. Parent folders are made; an existing file is replaced.",
        {
            "session_id": SESSION_ID,
            "path": PATH,
            "content_base64": {"type": "string", "description": "The file's bytes in base64."},
        },
        ["session_id", "path", "content_base64"],
    ),
    _tool(
        "download_file",
        "Read a file of a session's work directory (e.g. one a run wrote): images come back "
        "as images, other files as an embedded resource (text, or base64 bytes).",
        {"session_id": SESSION_ID, "path": PATH},
        ["session_id", "path"],
        read_only=True,
    ),
    _tool(
        "list_files",
        "List the files of a session's work directory: path, size in bytes, modification time.",
        {"session_id": SESSION_ID},
        ["session_id"],
        read_only=True,
    ),
]
VALIDATORS = {tool.name: Draft202012Validator(tool.input_schema) for tool in TOOLS}


class ToolError(Exception):
    """A call refused: its message is the tool error's text."""


class BraindrillTools:
    """The tools over one engine and its REST sessions. ``user_of(ctx)`` names the caller (the
    Jupyter user, as REST's ``owner``): their sessions and per-user limits are theirs."""

    def __init__(self, engine, sessions, user_of: Callable[[object], str]):
        self.engine = engine
        self.sessions = sessions
        self.user_of = user_of

    def server(self) -> Server:
        """A low-level MCP server of these tools (one per transport)."""
        return Server(
            "braindrill",
            version=__version__,
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    async def _list_tools(self, ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=TOOLS)

    async def _call_tool(self, ctx, params) -> types.CallToolResult:
        arguments = params.arguments or {}
        if params.name not in VALIDATORS:
            return _error(f"unknown tool {params.name!r}; tools: {', '.join(VALIDATORS)}")
        problems = [e.message for e in VALIDATORS[params.name].iter_errors(arguments)]
        if problems:
            return _error(f"invalid arguments for {params.name}: {'; '.join(problems)}")
        await self.engine.ensure_started()
        self.sessions.ensure_started()
        try:
            content = await getattr(self, params.name)(self.user_of(ctx), **arguments)
        except (BraindrillError, ToolError) as e:
            retry = getattr(e, "retry_after", None)
            hint = (
                f" (retry after {retry} s)" if isinstance(e, TooManyRequests | NoCapacity) else ""
            )
            return _error(f"{e}{hint}")
        return types.CallToolResult(content=content)

    # -- the tools: (user, arguments) → content --------------------------------------------------
    async def run_code(self, user, language, code, session_id=None, stdin="", limits=None):
        execution = self.engine.execution(language, code, stdin=stdin, limits=limits, user=user)
        if session_id is None:
            result = await self.engine.run(execution)
        else:
            session = self.sessions.get(user, session_id)
            self.sessions.check_language(session, execution.language.name)
            result = await self.sessions.run(session, execution)
        return result_content(result)

    async def list_languages(self, user):
        languages = [
            {
                "name": lang.name,
                "display_name": lang.display_name,
                "aliases": list(lang.aliases),
                "limits": _limits(self.engine.default_limits(lang)),
            }
            for lang in self.engine.languages()
        ]
        return [_text(json.dumps(languages, indent=1))]

    async def create_session(self, user, language):
        session = self.sessions.create(user, language)
        return [_text(json.dumps(views.session_model(self.sessions, session)))]

    async def end_session(self, user, session_id):
        self.sessions.delete(user, session_id)
        return [_text(f"session {session_id} ended; its files and variables are gone")]

    async def upload_file(self, user, session_id, path, content_base64):
        try:
            data = base64.b64decode(content_base64, validate=True)
        except (ValueError, binascii.Error) as e:
            raise ToolError(f"content_base64 is not valid base64: {e}") from e
        session = self.sessions.get(user, session_id)
        written = await self.sessions.write_file(session, path, data)
        return [_text(json.dumps(views.file_model(written)))]

    async def download_file(self, user, session_id, path):
        session = self.sessions.get(user, session_id)
        data = await self.sessions.read_file(session, path)
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if kind in (*IMAGES, "image/gif", "image/webp"):
            return [types.ImageContent(data=_b64(data), mime_type=kind)]
        uri = f"braindrill://sessions/{session_id}/files/{path}"
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            resource = types.BlobResourceContents(uri=uri, mime_type=kind, blob=_b64(data))
        else:
            resource = types.TextResourceContents(uri=uri, mime_type=kind, text=text)
        return [types.EmbeddedResource(resource=resource)]

    async def list_files(self, user, session_id):
        session = self.sessions.get(user, session_id)
        files = [views.file_model(f) for f in await self.sessions.files(session)]
        return [_text(json.dumps(files))]


def result_content(result: Result) -> list:
    """A run's Result as MCP content: one text with the status, the exit code and the output
    (compiler, stdout, stderr, the uncaught exception), then each rich output in order: an
    image for PNG and JPEG, else its richest text."""
    lines = [f"status: {result.status.value}"]
    if result.exit_code is not None:
        lines.append(f"exit_code: {result.exit_code}")
    for label, value in (("message", result.message), ("state", result.state_message)):
        if value:
            lines.append(f"{label}: {value}")
    sections = [("compile output", result.compile_output), ("stdout", result.stdout)]
    sections.append(("stderr", result.stderr))
    if result.error is not None:
        sections.append(("error", "\n".join(result.error.get("traceback", []))))
    for label, value in sections:
        if value:
            lines.append(f"--- {label} ---\n{value.rstrip(chr(10))}")
    content = [_text("\n".join(lines))]
    for output in result.outputs:
        data = output.get("data") or {}
        image = next((kind for kind in IMAGES if kind in data), None)
        if image is not None:
            content.append(types.ImageContent(data=data[image], mime_type=image))
            continue
        kind = next((kind for kind in TEXTS if kind in data), None)
        if kind is not None:
            value = data[kind]
            text = value if isinstance(value, str) else json.dumps(value)
            content.append(_text(f"[{output['output_type']} {kind}]\n{text}"))
    return content


def _limits(limits) -> dict:
    return {name: getattr(limits, name) for name in ("timeout_s", "memory_mib", "cpus")}


def _text(text: str) -> types.TextContent:
    return types.TextContent(text=text)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[_text(message)], is_error=True)
