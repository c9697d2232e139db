"""The programs that run inside sandboxes (``container/``), read once: one copy for every
language and worker host. They speak ``protocol.py``'s wire format; ``tests/unit/sandbox/
test_programs.py`` checks, without Docker, that each of them writes its constants as that
module defines them."""

from __future__ import annotations

import functools
import json
from importlib import resources

from ..languages import Language

CONTAINER = resources.files(__package__).joinpath("container")


@functools.cache
def text(name: str) -> str:
    """The text of one program of ``container/``."""
    return CONTAINER.joinpath(name).read_text()


BOOTSTRAP = text("bootstrap.sh")  # every container without a prestart: sh -c BOOTSTRAP


@functools.cache
def script(parts: tuple[str, ...]) -> str:
    """A program in parts: their texts joined in order (later ones use what earlier define)."""
    return "\n".join(text(part) for part in parts)


# A slot runner: its sandboxes, the relay's checks, the relay.
RUNNER = script(("runner_sandbox.py", "runner_checks.py", "runner.py"))
# The runner's seccomp profile, compact (it goes into the container's HostConfig).
SECCOMP = json.dumps(json.loads(text("seccomp-nested.json")))


def prestart_command(language: Language, lib: str = "") -> list[str]:
    """The argv of a prestarted interpreter: it runs its program, which reads the payload.
    ``lib``: cloudpickle's source as JSON (path → text), imported before the payload; empty:
    each stateful payload carries it."""
    program = script(language.prestart_script)
    return [*language.prestart, program, lib, language.source_file, *language.preload]
