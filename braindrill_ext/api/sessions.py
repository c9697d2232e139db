"""REST sessions: state (the work directory's files and, for Python, the variables) carried from
one ``POST /lang/<language>`` to the next, each still in a fresh container.

A session belongs to the Jupyter user who created it and has one language. Its executions run
one at a time (a second waits for the first), with the engine's state of key ``session:<id>``.
It ends when its owner deletes it or after ``idle_timeout_s`` unused; its state is dropped then,
and an execution still running cannot bring it back. Its files (its state's work directory) are
read and written between executions, in the same order of turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from dataclasses import dataclass, field

from traitlets import Float, Instance, Integer, TraitError, validate
from traitlets.config import LoggingConfigurable

from ..errors import TooManySessions, UnknownSession, WrongLanguage
from ..execution import Execution, Result

ENDED = "the session ended while this execution ran; its state was dropped"


@dataclass(eq=False)
class Session:
    """One REST session. Plain data; ``RestSessionManager`` keeps and changes it."""

    id: str
    user: str
    language: str  # the canonical name
    created: float  # wall-clock time (time.time())
    last_used: float  # wall-clock time of the last start or end of an execution
    used_at: float  # the same on the monotonic clock, for expiry
    executions: int = 0  # how many ran (whatever their status)
    pending: int = 0  # executions running or waiting for their turn
    ended: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def key(self) -> str:
        """Its state's key in the engine."""
        return f"session:{self.id}"


class RestSessionManager(LoggingConfigurable):
    """The REST sessions of this server. One instance, created by the extension app and handed
    to the handlers in ``settings["braindrill_sessions"]``. (Not ``SessionManager``: Jupyter
    Server's own notebook-session manager has that configuration section.)"""

    idle_timeout_s = Float(
        3600.0,
        config=True,
        help="A session unused this long ends and its state is dropped, in seconds. A session "
        "with an execution running or waiting never expires.",
    )
    max_per_user = Integer(
        32,
        config=True,
        help="Sessions one user may have at once; creating one more is refused (429, with "
        "Retry-After until the user's next session would expire).",
    )
    sweep_interval_s = Float(
        60.0, config=True, help="Seconds between the checks that end idle sessions."
    )

    engine = Instance("braindrill_ext.engine.ExecutionEngine")

    @validate("idle_timeout_s", "sweep_interval_s")
    def _check_positive(self, proposal):
        if not proposal["value"] > 0:
            raise TraitError(
                f"{proposal['trait'].name} must be a number of seconds > 0, got {proposal['value']}"
            )
        return proposal["value"]

    @validate("max_per_user")
    def _check_max_per_user(self, proposal):
        if proposal["value"] < 1:
            raise TraitError(f"max_per_user must be 1 or more, got {proposal['value']}")
        return proposal["value"]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._sessions: dict[str, Session] = {}
        self._sweeper: asyncio.Task | None = None
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------------------
    def ensure_started(self) -> None:
        """Start the expiry loop once, on the running loop. Called by the extension app when the
        server's loop runs and by the handlers before any use (as ``engine.ensure_started``)."""
        if self._sweeper is None and not self._stopped:
            self._sweeper = asyncio.ensure_future(self._sweep_loop())

    async def stop(self) -> None:
        """Stop the expiry loop and end every session. Called by the extension app at shutdown."""
        self._stopped = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        for session in list(self._sessions.values()):
            self._end(session, "server stopping")

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            try:
                self.expire_idle()
            except Exception:
                self.log.exception("braindrill session expiry failed")

    def expire_idle(self) -> int:
        """End every session idle past ``idle_timeout_s``; returns how many. Called every
        ``sweep_interval_s`` by the expiry loop."""
        idle = [s for s in self._sessions.values() if self._expired(s)]
        for session in idle:
            self._end(session, "expired")
        return len(idle)

    # -- what the handlers call ------------------------------------------------------------------
    def create(self, user: str, language: str) -> Session:
        """A new session of ``user`` for ``language`` (a name or an alias). Raises
        ``UnknownLanguage`` and ``TooManySessions``."""
        name = self.engine.language(language).name
        mine = self.list_for(user)
        if len(mine) >= self.max_per_user:
            retry = min(self._remaining_s(s) for s in mine)
            raise TooManySessions(
                f"user {user!r} has {len(mine)} sessions, the most allowed; delete one "
                "(DELETE /braindrill/sessions/<id>) or wait for one to expire",
                retry_after=max(1, math.ceil(retry)),
            )
        now = time.time()
        session = Session(uuid.uuid4().hex, user, name, now, now, time.monotonic())
        self._sessions[session.id] = session
        self.log.info("session %s of %s for %s created", session.id, user, name)
        return session

    def get(self, user: str, session_id: str) -> Session:
        """``user``'s session ``session_id``; ends it first if it has expired. Raises
        ``UnknownSession`` (also for another user's session: its existence is not told)."""
        session = self._sessions.get(session_id)
        if session is None or session.user != user:
            raise UnknownSession(session_id)
        if self._expired(session):
            self._end(session, "expired")
            raise UnknownSession(session_id)
        return session

    def list_for(self, user: str) -> list[Session]:
        """``user``'s sessions, oldest first (expired ones ended on the way)."""
        self.expire_idle()
        return [s for s in self._sessions.values() if s.user == user]

    def delete(self, user: str, session_id: str) -> None:
        """End ``user``'s session and drop its state. Raises ``UnknownSession``."""
        self._end(self.get(user, session_id), "deleted")

    def check_language(self, session: Session, language: str) -> None:
        """Raises ``WrongLanguage`` unless ``language`` (canonical) is the session's."""
        if language != session.language:
            raise WrongLanguage(
                f"session {session.id!r} is a {session.language} session; use it with "
                f"POST /lang/{session.language}, not /lang/{language}"
            )

    async def run(self, session: Session, execution: Execution, on_output=None) -> Result:
        """Run ``execution`` with the session's state, after the session's earlier executions
        (one at a time, in order of arrival), and keep the state it leaves (``engine.run``).
        The caller has checked the language (``check_language``, before it answers anything).
        Raises ``UnknownSession`` when the session ended while the execution waited, and what
        ``engine.run`` raises."""
        async with self._turn(session):
            result = await self.engine.run(execution, on_output, state=session.key)
            session.executions += 1
            if session.ended:  # deleted or stopped meanwhile: what run() kept goes too
                self.engine.drop_state(session.key)
                notes = [result.state_message] if result.state_message else []
                result.state_message = "; ".join([*notes, ENDED])
            return result

    # The session's files: its state's, what its next execution finds in its work directory.
    # Each waits for the session's turn, as an execution does (``_turn``).
    async def files(self, session: Session) -> list[dict]:
        """The files of the session's work directory: ``{path, size, mtime}``."""
        async with self._turn(session):
            return await self.engine.state_files(session.key)

    async def read_file(self, session: Session, path: str) -> bytes:
        """One file's bytes. Raises ``BadFilePath``, ``UnknownFile``, ``UnknownSession``."""
        async with self._turn(session):
            return await self.engine.read_state_file(session.key, path)

    async def write_file(self, session: Session, path: str, data: bytes) -> dict:
        """Create or replace a file (parent folders are implied); returns it as ``files``
        lists it. Raises ``BadFilePath``, ``StateTooLarge``, ``StateBudgetFull``,
        ``UnknownSession``."""
        language = self.engine.language(session.language)
        async with self._turn(session):
            await self.engine.write_state_file(session.key, path, data, language)
            if session.ended:  # deleted meanwhile: what was written goes too
                self.engine.drop_state(session.key)
                raise UnknownSession(session.id)
            files = await self.engine.state_files(session.key)
        return next(f for f in files if f["path"] == path)

    async def delete_file(self, session: Session, path: str) -> None:
        """Remove a file. Raises ``BadFilePath``, ``UnknownFile``, ``UnknownSession``."""
        async with self._turn(session):
            await self.engine.delete_state_file(session.key, path)
            if session.ended:
                self.engine.drop_state(session.key)

    def state_bytes(self, session: Session) -> int:
        return self.engine.state_bytes(session.key)

    def expires_at(self, session: Session) -> float:
        """When the session expires unless used again (wall-clock time; expiry itself is
        measured on the monotonic clock)."""
        return session.last_used + self.idle_timeout_s

    # -- inside ----------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _turn(self, session: Session):
        """The session's turn: after its earlier executions and file operations, in order of
        arrival, one at a time; it counts as a use (no expiry meanwhile). Raises
        ``UnknownSession`` when the session ended while waiting."""
        session.pending += 1
        try:
            async with session.lock:
                if session.ended:
                    raise UnknownSession(session.id)
                self._touch(session)
                yield
        finally:
            session.pending -= 1
            self._touch(session)

    def _touch(self, session: Session) -> None:
        session.last_used = time.time()
        session.used_at = time.monotonic()

    def _remaining_s(self, session: Session) -> float:
        return session.used_at + self.idle_timeout_s - time.monotonic()

    def _expired(self, session: Session) -> bool:
        return session.pending == 0 and self._remaining_s(session) <= 0

    def _end(self, session: Session, why: str) -> None:
        session.ended = True
        self._sessions.pop(session.id, None)
        self.engine.drop_state(session.key)
        self.log.info("session %s of %s %s", session.id, session.user, why)
