"""The tests without Docker: they pass with no Docker Engine reachable, so none of them may be
marked ``docker`` (a test that needs containers belongs in ``tests/docker/``)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    marked = [
        i.nodeid
        for i in items
        if i.path.resolve().is_relative_to(HERE) and i.get_closest_marker("docker")
    ]
    if marked:
        raise pytest.UsageError(
            f"tests/unit/ needs no Docker, but these are marked docker: {marked}"
        )
