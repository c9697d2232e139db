"""State that outlives a container: what a kernel's cell (or a REST session's execution) leaves
behind, carried as data to the next one, which runs in a fresh container on any worker host.

A state is an opaque blob made inside a sandbox (a tar of the work directory's files and, for
Python, the user namespace pickled with cloudpickle; formats in ``protocol.py``). The server
keeps it in memory, counts it against ``budget_mib`` and only ever sends it to the next sandbox of
the kernel or session that made it: it never opens, unpickles or runs it.

An execution replaces its owner's state when it ended normally or with an exception (``ok`` or
``error``, as IPython keeps a failed cell's partial effects); after ``timeout``, ``oom``,
``output_limit``, ``worker_lost``, an internal error or an interrupt the state stays as it was.
"""

from __future__ import annotations

from traitlets import Bool, Integer
from traitlets.config import LoggingConfigurable

from ..errors import StateBudgetFull
from ..execution import Result, Status

REPLACES = (Status.OK, Status.ERROR)  # the outcomes whose state is kept
AS_BEFORE = "the state (variables and files) is as it was before this execution"


class StateStore(LoggingConfigurable):
    """The states of every kernel and REST session of this server, by owner key: a plain store.
    One instance, created by the engine, which alone reads and writes it."""

    budget_mib = Integer(
        1024,
        config=True,
        help="Memory the states of all kernels and REST sessions may take together, in MiB. A "
        "state that does not fit is not kept (its execution says so); other states are untouched.",
    )
    kernels = Bool(
        True,
        config=True,
        help="Carry state (files, Python variables) from cell to cell in Braindrill kernels. "
        "False: every cell starts from an empty work directory, as each runs in a fresh container.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._blobs: dict[str, bytes] = {}
        self.used = 0  # bytes of all kept states

    def get(self, key: str) -> bytes:
        """The state of ``key`` (empty when it has none yet)."""
        return self._blobs.get(key, b"")

    def size(self, key: str) -> int:
        return len(self._blobs.get(key, b""))

    def put(self, key: str, blob: bytes) -> None:
        """Keep ``blob`` as the state of ``key``. Raises ``StateBudgetFull`` (and keeps the old
        one) when it does not fit in the budget."""
        old = len(self._blobs.get(key, b""))
        budget = self.budget_mib << 20
        if self.used - old + len(blob) > budget:
            raise StateBudgetFull(
                f"the server's memory for states is full ({self.used >> 20} of "
                f"{self.budget_mib} MiB); a state of {len(blob) >> 20} MiB was not kept"
            )
        self.used += len(blob) - old
        if blob:
            self._blobs[key] = blob
        else:
            self._blobs.pop(key, None)

    def drop(self, key: str) -> None:
        """Forget the state of ``key``: a kernel stopped or restarted, a session ended or
        expired, ``%reset``."""
        self.used -= len(self._blobs.pop(key, b""))


def keep_state(store: StateStore, key: str, result: Result) -> None:
    """After an execution that started from the state of ``key``: keep the state it left when it
    ended normally or with an exception, else keep the one before. Its ``state_message`` says
    when the state did not simply move on. Called by the engine's ``run``."""
    notes = [result.state_message] if result.state_message else []
    if result.status not in REPLACES:
        notes.append(AS_BEFORE)
    elif result.state_unchanged:
        pass  # the sandbox left it as it came: the one kept here is the state
    elif result.state is None:
        notes.append(f"its state did not come back whole; {AS_BEFORE}")
    else:
        try:
            store.put(key, result.state)
        except StateBudgetFull as e:
            notes.append(f"{e}; {AS_BEFORE}")
    result.state_message = "; ".join(notes) or None
