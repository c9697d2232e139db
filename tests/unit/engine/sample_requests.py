"""The requests of the validation tests (``test_validation.py``, ``test_limits.py``): Python and C
as kernelspecs give them (C with a default above the operator's maximum), a registry of the two,
and an execution made of them (the operator's default policy: the ``policy`` fixture,
conftest.py)."""

from __future__ import annotations

from braindrill_ext.engine.validation import make_execution
from braindrill_ext.languages import Language, LanguageRegistry

PYTHON = Language(
    name="python",
    display_name="Python",
    image="python:3-slim",
    source_file="main.py",
    run=("python3", "-u", "main.py"),
    version_command=("python3", "--version"),
    aliases=("py",),
)
C = Language(
    name="c",
    display_name="C",
    image="gcc:13",
    source_file="main.c",
    run=("./main",),
    version_command=("gcc", "--version"),
    compile=("gcc", "-o", "main", "main.c"),
    limits={"memory_mib": 512, "timeout_s": 90},  # a kernelspec default above the maximum
)
REGISTRY = LanguageRegistry([PYTHON, C])


def make(policy, code="print(1)", language="python", **fields):
    return make_execution(REGISTRY, policy, language, code, **fields)
