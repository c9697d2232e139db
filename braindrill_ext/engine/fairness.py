"""Fairness between users: per-user limits on concurrent executions and on request rate.

The engine asks ``UserLimits.admit(user)`` before an execution joins the queue; past a limit the
request is refused at once with ``TooManyRequests`` (HTTP 429 with ``Retry-After``), so one user
flooding the server fills neither the slots nor the queue that others wait in. A user is the
authenticated Jupyter user of a REST request, or a kernel (whose cells run one at a time anyway).
"""

from __future__ import annotations

import contextlib
import math
import time

from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

from ..errors import TooManyRequests


class UserLimits(LoggingConfigurable):
    """Per-user limits, each 0 for none (the default: a single-user Jupyter server needs none)."""

    max_concurrent = Integer(
        0,
        config=True,
        help="Executions one user may have running or queued at once (0: no limit); more get "
        "429. Set it below the total slots for fairness between users.",
    )
    rate_per_minute = Float(
        0.0,
        config=True,
        help="Executions one user may start per minute, on average (0: no limit); more get 429.",
    )
    burst = Integer(
        10, config=True, help="Executions a user may start at once above the rate (the bucket)."
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._active: dict[str, int] = {}
        self._tokens: dict[str, tuple[float, float]] = {}  # user → (tokens, when counted)

    @contextlib.contextmanager
    def admit(self, user: str):
        """Hold one of ``user``'s places for the length of the block; raises
        ``TooManyRequests`` when the user is past a limit. Called by the engine's ``run``."""
        active = self._active.get(user, 0)
        if self.max_concurrent and active >= self.max_concurrent:
            raise TooManyRequests(
                f"user {user!r} already has {active} executions running or queued "
                f"(the limit is {self.max_concurrent})",
                retry_after=1,
            )
        self._take_token(user)
        self._active[user] = active + 1
        try:
            yield
        finally:
            self._active[user] -= 1
            if not self._active[user]:
                del self._active[user]

    def _take_token(self, user: str) -> None:
        if not self.rate_per_minute:
            return
        per_s = self.rate_per_minute / 60
        now = time.monotonic()
        tokens, then = self._tokens.get(user, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * per_s)
        if tokens < 1:
            self._tokens[user] = (tokens, now)
            raise TooManyRequests(
                f"user {user!r} is past the rate of {self.rate_per_minute:g} executions a minute",
                retry_after=math.ceil((1 - tokens) / per_s),
            )
        self._tokens[user] = (tokens - 1, now)
