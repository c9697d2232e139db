"""Fixtures of the engine's unit tests."""

from __future__ import annotations

import pytest

from braindrill_ext.engine.limits import LimitsPolicy


@pytest.fixture
def policy():
    """The operator's default limits policy (a test may change it: each gets its own)."""
    return LimitsPolicy()
