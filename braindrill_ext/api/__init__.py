"""The front door for web clients and agents: the REST API (``POST /lang/<language>``, ``GET
/lang``, REST sessions and their files, the worker hosts' view, the OpenAPI document
``openapi.json``) and the MCP server (``mcp_tools.py``: the tools, over the same engine API and
sessions as REST; ``mcp_http.py``: streamable HTTP at ``/braindrill/mcp``; the stdio command,
``braindrill-mcp``, is ``braindrill_ext/mcp_stdio.py``, a process's owner). The handler modules
(``handlers.py``, ``files.py``, ``mcp_http.py``) are the only ones that speak HTTP; everything
goes through the engine's public API (``engine/__init__.py``).

``rest_handlers``: every REST route, as ``openapi.json`` describes them."""

from . import files, handlers

rest_handlers = [*handlers.default_handlers, *files.default_handlers]
