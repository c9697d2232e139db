"""The REST API, a front door: ``POST /lang/<language>``, ``GET /lang``, REST sessions, the worker
hosts' view and the OpenAPI document (``openapi.json``). ``handlers.py`` is the only module that
speaks HTTP; everything goes through the engine's public API (``engine/__init__.py``)."""
