"""REST handlers: POST /lang/<language> runs code; GET /lang lists languages; GET
/braindrill/workers shows the worker hosts; /braindrill/sessions creates, lists and ends the
sessions that carry state between executions. With ``files.py`` (a session's files) and
``mcp_http.py`` (the MCP endpoint), the only modules that speak HTTP; ``engine_error`` is the
one translation of the engine's errors into HTTP."""

from __future__ import annotations

import asyncio
import json

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from ..engine import Running, parse_body, parse_session_body
from ..errors import (
    BadState,
    HostUnavailable,
    InvalidRequest,
    NoCapacity,
    PackageIndexError,
    PackageRefused,
    PackagesTooLarge,
    PayloadTooLarge,
    StateBudgetFull,
    TooManyRequests,
    UnknownFile,
    UnknownLanguage,
    UnknownSession,
)
from . import views

AUTH_RESOURCE = "braindrill"
HOST_RETRY_AFTER_S = 5  # Retry-After when no worker host could start an execution
# What installing a request's ``packages`` may raise (before its code runs).
PACKAGE_ERRORS = (PackageRefused, PackagesTooLarge, PackageIndexError)
FORMATS = {"application/json": "json", "text/plain": "text", "text/event-stream": "events"}
SHARED_OWNER = "(server token)"  # the owner of sessions made with the server's own token


class BraindrillHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def engine(self):
        return self.settings["braindrill_engine"]

    @property
    def sessions(self):
        sessions = self.settings["braindrill_sessions"]
        sessions.ensure_started()  # its expiry loop, on the server's loop
        return sessions

    @property
    def owner(self) -> str:
        """Who this request is (whose sessions it sees, whose per-user limits it counts against,
        who the audit line names): its Jupyter user's name. But Jupyter's own identity
        providers make up a new anonymous user for every request authenticated by the server's
        shared token without a login cookie (``curl -H "Authorization: token <t>"``), and for
        every request when auth is off: such requests are all one owner, whoever has the token."""
        idp = self.identity_provider
        if not idp.auth_enabled:
            return SHARED_OWNER
        if idp.token and idp.is_token_authenticated(self) and idp.get_token(self) == idp.token:
            return SHARED_OWNER
        return self.current_user.username

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        cause = getattr(exc, "__cause__", None)
        if isinstance(cause, (NoCapacity, TooManyRequests)):
            self.set_header("Retry-After", str(cause.retry_after))
        elif isinstance(cause, HostUnavailable):
            self.set_header("Retry-After", str(HOST_RETRY_AFTER_S))
        super().write_error(status_code, **kwargs)

    def engine_error(self, e: Exception) -> web.HTTPError:
        """Translate an engine error into the HTTP error users see."""
        if isinstance(e, (UnknownLanguage, UnknownSession, UnknownFile)):
            return web.HTTPError(404, str(e))
        if isinstance(e, (PayloadTooLarge, StateBudgetFull)):
            return web.HTTPError(413, str(e))
        if isinstance(e, InvalidRequest):
            return web.HTTPError(400, str(e))
        if isinstance(e, TooManyRequests):
            return web.HTTPError(429, str(e))  # write_error adds Retry-After
        if isinstance(e, (HostUnavailable, NoCapacity)):
            return web.HTTPError(503, str(e))  # write_error adds Retry-After
        if isinstance(e, BadState):
            return web.HTTPError(500, str(e))
        if isinstance(e, PackageIndexError):
            return web.HTTPError(502, str(e))
        raise e


class LanguagesHandler(BraindrillHandler):
    @web.authenticated
    @authorized
    async def get(self, language: str | None = None):
        """GET /lang: the languages with image, version and limits; GET /lang/<name>/info: one."""
        await self.engine.ensure_started()
        try:
            langs = [self.engine.language(language)] if language else self.engine.languages()
        except UnknownLanguage as e:
            raise self.engine_error(e) from e
        models = await asyncio.gather(*(self.engine.describe_language(lang) for lang in langs))
        self.finish(json.dumps(models[0] if language else {"languages": models}))


class ExecutionHandler(BraindrillHandler):
    """POST /lang/<language>: run the body as code in a fresh sandbox.

    The body is the code itself, or (Content-Type: application/json) an object with ``code`` and
    optional ``stdin``, ``args``, ``files``, ``limits``, ``interactive`` and ``session`` (run
    with that session's state, after its earlier executions). The answer is a JSON
    Result, the output as text/plain (status in X-Braindrill-Status), or server-sent events,
    after ``Accept``.
    """

    _running: Running | None = None
    _client_gone = False  # on_connection_close: nobody waits for the answer

    @web.authenticated
    @authorized
    async def post(self, language: str):
        await self.engine.ensure_started()
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        user = self.owner  # for the per-user limits and the audit line too
        try:
            fields = parse_body(self.request.body, ctype, self.engine.code_bytes)
            session_id = fields.pop("session", None)
            execution = self.engine.execution(language, **fields, user=user)
            session = None if session_id is None else self.sessions.get(user, session_id)
            if session is not None:
                self.sessions.check_language(session, execution.language.name)
        except (UnknownLanguage, UnknownSession, InvalidRequest, PayloadTooLarge) as e:
            raise self.engine_error(e) from e
        fmt = self._response_format()
        on_output = self._on_output if fmt == "events" else None
        if fmt == "events":
            self.set_header("Content-Type", "text/event-stream; charset=UTF-8")
            self.set_header("Cache-Control", "no-cache")
            self.set_header("X-Accel-Buffering", "no")
        if session is None:
            self._running = self.engine.start(execution, on_output)
        else:
            self._running = Running(self.sessions.run(session, execution, on_output))
        try:
            result = await self._running.result()
        except (NoCapacity, HostUnavailable, TooManyRequests, UnknownSession, *PACKAGE_ERRORS) as e:
            if fmt == "events" and self._headers_written:
                self._send_event("error", {"message": str(e)})
                return self.finish()
            raise self.engine_error(e) from e
        finally:
            self._running = None
        if result is None:  # stopped: the client went away, or the server is stopping
            if self._client_gone:
                self.log.info("client went away; execution %s cancelled", execution.id)
                return
            stopping = "the server is shutting down: the execution was stopped; send it again"
            if fmt == "events" and self._headers_written:
                self._send_event("error", {"message": stopping})
                return self.finish()
            raise web.HTTPError(503, stopping)
        if fmt == "events":
            self._send_event("result", result.to_json())
            self.finish()
        elif fmt == "text":
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.set_header("X-Braindrill-Status", result.status.value)
            if result.exit_code is not None:
                self.set_header("X-Braindrill-Exit-Code", str(result.exit_code))
            self.finish((result.compile_output or "") + result.stdout + result.stderr)
        else:
            self.finish(json.dumps(result.to_json()))

    def finish(self, chunk=None):
        """APIHandler.finish forces application/json; keep text/plain and event streams as set."""
        if self._headers.get("Content-Type", "").startswith(("text/plain", "text/event-stream")):
            self.update_api_activity()
            return super(APIHandler, self).finish(chunk)
        return super().finish(chunk)

    def on_connection_close(self):
        self._client_gone = True
        if self._running is not None:
            self._running.cancel()

    def _on_output(self, kind: str, value):
        """Each piece of output as it happens: ``stdout``/``stderr`` events with the text, a
        ``display`` event with each rich output."""
        self._send_event("display" if kind == "output" else kind, value)

    def _send_event(self, event: str, data):
        if isinstance(data, str):
            data = {"text": data}
        self.write(f"event: {event}\ndata: {json.dumps(data)}\n\n")
        self.flush().add_done_callback(self._check_flushed)

    def _check_flushed(self, fut):
        if fut.exception() is not None and isinstance(fut.exception(), StreamClosedError):
            self.on_connection_close()

    def _response_format(self) -> str:
        accept = self.request.headers.get("Accept", "")
        for part in accept.split(","):
            media = part.split(";")[0].strip().lower()
            if media in FORMATS:
                return FORMATS[media]
        return "json"


class WorkersHandler(BraindrillHandler):
    @web.authenticated
    @authorized
    async def get(self):
        """GET /braindrill/workers: health, slots, running and completed per worker host."""
        await self.engine.ensure_started()
        self.finish(json.dumps(self.engine.describe_hosts()))


class SessionsHandler(BraindrillHandler):
    """``/braindrill/sessions``: the caller's sessions (GET), a new one (POST)."""

    @web.authenticated
    @authorized
    async def get(self):
        """GET: the caller's sessions, oldest first."""
        mine = self.sessions.list_for(self.owner)
        models = [views.session_model(self.sessions, s) for s in mine]
        self.finish(json.dumps({"sessions": models}))

    @web.authenticated
    @authorized
    async def post(self):
        """POST ``{"language": <name or alias>}``: 201 with the new session."""
        try:
            language = parse_session_body(self.request.body)
            session = self.sessions.create(self.owner, language)
        except (UnknownLanguage, InvalidRequest, TooManyRequests) as e:
            raise self.engine_error(e) from e
        self.set_status(201)
        self.set_header("Location", url_path_join(self.base_url, "braindrill/sessions", session.id))
        self.finish(json.dumps(views.session_model(self.sessions, session)))


class SessionHandler(BraindrillHandler):
    """``/braindrill/sessions/<id>``: one of the caller's sessions (GET), its end (DELETE).
    Another user's session is 404, as an unknown one."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str):
        try:
            session = self.sessions.get(self.owner, session_id)
        except UnknownSession as e:
            raise self.engine_error(e) from e
        self.finish(json.dumps(views.session_model(self.sessions, session)))

    @web.authenticated
    @authorized
    async def delete(self, session_id: str):
        """End the session and drop its state; an execution still running keeps none."""
        try:
            self.sessions.delete(self.owner, session_id)
        except UnknownSession as e:
            raise self.engine_error(e) from e
        self.set_status(204)
        self.finish()


class OpenAPIHandler(BraindrillHandler):
    """GET /braindrill/openapi.json: the OpenAPI 3.1 description of this API, the package's
    ``openapi.json`` (the one copy; tests/*/api/test_openapi*.py keep it true) with its server
    URL set to this server's base_url."""

    _document: str | None = None  # the file's text, read once

    @web.authenticated
    @authorized
    async def get(self):
        if OpenAPIHandler._document is None:
            from importlib.resources import files

            OpenAPIHandler._document = files(__package__).joinpath("openapi.json").read_text()
        document = json.loads(OpenAPIHandler._document)
        document["servers"] = [{"url": self.base_url, "description": "This server's base_url."}]
        self.finish(json.dumps(document))


default_handlers = [
    (r"/lang/?", LanguagesHandler),
    (r"/lang/([^/]+)/info", LanguagesHandler),
    (r"/lang/([^/]+)", ExecutionHandler),
    (r"/braindrill/workers", WorkersHandler),
    (r"/braindrill/sessions/?", SessionsHandler),
    (r"/braindrill/sessions/([^/]+)", SessionHandler),
    (r"/braindrill/openapi\.json", OpenAPIHandler),
]
