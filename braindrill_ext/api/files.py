"""REST handlers of a session's files: ``/braindrill/sessions/<id>/files[/<path>]``. A session's
files are its state's (what its next execution finds in ``/work``, what its last one left): an
agent uploads a spreadsheet, runs code on it, downloads the chart it wrote. Each operation takes
the session's turn (``RestSessionManager``), so it never interleaves with an execution.

A file written in a sandbox is never rendered on Jupyter's origin: a download is an attachment,
``nosniff``, whatever its name; its Content-Type (guessed from the name) is a hint for clients.
"""

from __future__ import annotations

import json
import mimetypes
import posixpath

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import (
    BadState,
    InvalidRequest,
    PayloadTooLarge,
    StateBudgetFull,
    UnknownFile,
    UnknownSession,
)
from . import views
from .handlers import BraindrillHandler

REFUSALS = (UnknownSession, UnknownFile, InvalidRequest, PayloadTooLarge, StateBudgetFull, BadState)


class SessionFilesHandler(BraindrillHandler):
    """``GET /braindrill/sessions/<id>/files``: the session's files (path, size, mtime)."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str):
        try:
            session = self.sessions.get(self.owner, session_id)
            files = await self.sessions.files(session)
        except REFUSALS as e:
            raise self.engine_error(e) from e
        self.finish(json.dumps({"files": [views.file_model(f) for f in files]}))


class SessionFileHandler(BraindrillHandler):
    """``/braindrill/sessions/<id>/files/<path>``: one file of the session's work directory,
    as raw bytes (GET), created or replaced from the raw body (PUT), removed (DELETE). A path
    that leaves the work directory or names ``.braindrill/`` is 400; an unknown file, or a
    session that is not the caller's, 404; a state past its cap, 413."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str, path: str):
        try:
            session = self.sessions.get(self.owner, session_id)
            data = await self.sessions.read_file(session, path)
        except REFUSALS as e:
            raise self.engine_error(e) from e
        self.set_attachment_header(posixpath.basename(path))
        self.set_header("X-Content-Type-Options", "nosniff")
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        self.finish(data, set_content_type=kind)

    @web.authenticated
    @authorized
    async def put(self, session_id: str, path: str):
        try:
            session = self.sessions.get(self.owner, session_id)
            written = await self.sessions.write_file(session, path, self.request.body)
        except REFUSALS as e:
            raise self.engine_error(e) from e
        self.finish(json.dumps(views.file_model(written)))

    @web.authenticated
    @authorized
    async def delete(self, session_id: str, path: str):
        try:
            session = self.sessions.get(self.owner, session_id)
            await self.sessions.delete_file(session, path)
        except REFUSALS as e:
            raise self.engine_error(e) from e
        self.set_status(204)
        self.finish()


default_handlers = [
    (r"/braindrill/sessions/([^/]+)/files/?", SessionFilesHandler),
    (r"/braindrill/sessions/([^/]+)/files/(.+)", SessionFileHandler),
]
