"""The engine: runs executions on the worker hosts (``hosts/``), each in a fresh sandbox
(``sandbox/``), and keeps the states that kernels and sessions carry.

The front doors (``api/``, ``kernel/``) import from this package only, and use only this API of
``ExecutionEngine``; everything else here is the engine's own:

- ``language(name)``, ``languages()``, ``default_limits(language)``, ``code_bytes``: what can run;
- ``execution(language, code, **fields)``: a request checked into an ``Execution``;
- ``run(execution, on_output, state=key)`` → ``Result``; ``start(...)`` → ``Running``, to await
  and cancel; a ``state`` key restores and keeps a kernel's or session's state;
- ``run(..., packages=key)``: the packages of ``key`` (default: the ``state`` key) on the
  program's ``sys.path``; an execution's ``packages`` (REST) are installed first;
- ``install_packages(key, requirements, language)``, ``uninstall_packages(key, names,
  language)`` → ``Report``; ``installed_packages(key)``: a kernel's ``%pip`` (``packages.py``);
- ``drop_state(key)`` (the packages too), ``state_bytes(key)``, ``keeps_kernel_state``;
- ``state_files(key)``, ``read_state_file(key, path)``, ``write_state_file(key, path, data,
  language)``, ``delete_state_file(key, path)``: a state's files (``statefiles.py``), for a
  session's files over REST and MCP; the caller serializes them with the state's executions;
- ``version(language)``, ``describe_language(language)``, ``describe_hosts()``;
- ``ensure_started()``, ``stop()``, ``remove_own_containers()``: for the owner of the process.

Refusals are the typed errors of ``errors.py``. The request parsers of ``validation.py`` that the
front doors need are re-exported here.
"""

from ..sandbox.protocol import REPLY_MIME  # a tool execution's answer (Execution.tool)
from .engine import ExecutionEngine
from .running import Running
from .validation import LIMITS_MAGIC, parse_body, parse_session_body, split_limits

__all__ = [
    "LIMITS_MAGIC",
    "REPLY_MIME",
    "ExecutionEngine",
    "Running",
    "parse_body",
    "parse_session_body",
    "split_limits",
]
