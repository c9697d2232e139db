"""REST handlers: POST /lang/<language> runs code; GET /lang lists languages; GET
/braindrill/workers shows the worker hosts. The only module that speaks HTTP."""

from __future__ import annotations

import asyncio
import json

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from . import views
from .errors import (
    HostUnavailable,
    InvalidRequest,
    NoCapacity,
    PayloadTooLarge,
    TooManyRequests,
    UnknownLanguage,
)
from .validation import make_execution, parse_body

AUTH_RESOURCE = "braindrill"
HOST_RETRY_AFTER_S = 5  # Retry-After when no worker host could start an execution
FORMATS = {"application/json": "json", "text/plain": "text", "text/event-stream": "events"}


class BraindrillHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def engine(self):
        return self.settings["braindrill_engine"]

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
        if isinstance(e, UnknownLanguage):
            return web.HTTPError(404, str(e))
        if isinstance(e, PayloadTooLarge):
            return web.HTTPError(413, str(e))
        if isinstance(e, InvalidRequest):
            return web.HTTPError(400, str(e))
        if isinstance(e, TooManyRequests):
            return web.HTTPError(429, str(e))  # write_error adds Retry-After
        if isinstance(e, (HostUnavailable, NoCapacity)):
            return web.HTTPError(503, str(e))  # write_error adds Retry-After
        raise e


class LanguagesHandler(BraindrillHandler):
    @web.authenticated
    @authorized
    async def get(self, language: str | None = None):
        """GET /lang: the languages with image, version and limits; GET /lang/<name>/info: one."""
        await self.engine.ensure_started()
        try:
            langs = [self.engine.registry.get(language)] if language else list(self.engine.registry)
        except UnknownLanguage as e:
            raise self.engine_error(e) from e
        models = await asyncio.gather(*(views.language_model(self.engine, lang) for lang in langs))
        self.finish(json.dumps(models[0] if language else {"languages": models}))


class ExecutionHandler(BraindrillHandler):
    """POST /lang/<language>: run the body as code in a fresh sandbox.

    The body is the code itself, or (Content-Type: application/json) an object with ``code`` and
    optional ``stdin``, ``args``, ``files``, ``limits`` and ``interactive``. The answer is a JSON
    Result, the output as text/plain (status in X-Braindrill-Status), or server-sent events,
    after ``Accept``.
    """

    _task: asyncio.Task | None = None

    @web.authenticated
    @authorized
    async def post(self, language: str):
        await self.engine.ensure_started()
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        try:
            fields = parse_body(self.request.body, ctype, self.engine.limits)
            execution = make_execution(
                self.engine.registry,
                self.engine.limits,
                language,
                **fields,
                user=self.current_user.username,
            )
        except (UnknownLanguage, InvalidRequest, PayloadTooLarge) as e:
            raise self.engine_error(e) from e
        fmt = self._response_format()
        on_output = self._on_output if fmt == "events" else None
        if fmt == "events":
            self.set_header("Content-Type", "text/event-stream; charset=UTF-8")
            self.set_header("Cache-Control", "no-cache")
            self.set_header("X-Accel-Buffering", "no")
        self._task = asyncio.ensure_future(self.engine.run(execution, on_output))
        try:
            result = await self._task
        except asyncio.CancelledError:
            self.log.info("client went away; execution %s cancelled", execution.id)
            return
        except (NoCapacity, HostUnavailable, TooManyRequests) as e:
            if fmt == "events" and self._headers_written:
                self._send_event("error", {"message": str(e)})
                return self.finish()
            raise self.engine_error(e) from e
        finally:
            self._task = None
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
        if self._task is not None:
            self._task.cancel()

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
        self.finish(json.dumps(views.workers_model(self.engine)))


class OpenAPIHandler(BraindrillHandler):
    """GET /braindrill/openapi.json: the OpenAPI 3.1 description of this API, the package's
    ``openapi.json`` (the one copy; tests/test_openapi.py keeps it true) with its server URL set to
    this server's base_url."""

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
    (r"/braindrill/openapi\.json", OpenAPIHandler),
]
