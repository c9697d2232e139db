"""The REST API, a front door: ``POST /lang/<language>``, ``GET /lang``, REST sessions and their
files, the worker hosts' view and the OpenAPI document (``openapi.json``). The handler modules
(``handlers.py``, ``files.py``) are the only ones that speak HTTP; everything goes through the
engine's public API (``engine/__init__.py``).

``rest_handlers``: every REST route, as ``openapi.json`` describes them."""

from . import files, handlers

rest_handlers = [*handlers.default_handlers, *files.default_handlers]
