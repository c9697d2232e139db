"""Which sandbox kind a worker host runs each language in, and why: what ``GET
/braindrill/workers`` and the log show.

A host's setting is ``"container"`` (a fresh container per execution), ``"nested"`` (slot
runners: a fresh nested sandbox per execution) or ``"auto"``, the default: nested where the
host's kernel lets a runner make user namespaces and the language's image has what the runner
needs (``python3``), container otherwise. ``auto`` learns it the first time a language needs a
sandbox on the host: its first runner either gets ready (nested, confirmed) or says why it cannot
(``CannotNest``; that execution, and the next ones, get containers). A refusal is tried again
after ``RETRY_S``, in case it was the host's state and not its nature. Languages with network
access always get containers: a nested sandbox has no network.
"""

from __future__ import annotations

import time

KINDS = ("auto", "container", "nested")
RETRY_S = 600.0  # an `auto` host tries nested sandboxes again this long after a refusal


class SandboxKinds:
    """One worker host's choices. Used by ``WorkerHost`` (``nests``), the engine's placement and
    pools (``refused``, when a runner cannot start) and the runners (``confirmed``)."""

    def __init__(self, host: str, setting: str, log):
        self.host = host
        self.setting = setting
        self.log = log
        self._choices: dict[str, tuple[str, str]] = {}  # language → (kind, reason)
        self._refused_at: dict[str, float] = {}

    @property
    def auto(self) -> bool:
        return self.setting == "auto"

    def nests(self, language) -> bool:
        """Whether ``language`` runs in slot runners here."""
        if self.setting == "container" or language.network:
            return False
        if self.setting == "nested":
            return True
        at = self._refused_at.get(language.name)
        if at is not None and time.monotonic() - at < RETRY_S:
            return False
        return True

    def confirmed(self, language) -> None:
        """A runner of ``language`` got ready here: nested sandboxes work."""
        if self._choices.get(language.name, ("",))[0] != "nested":
            reason = (
                "auto: a runner made nested sandboxes here" if self.auto else "the host's setting"
            )
            self._choices[language.name] = ("nested", reason)
            self._refused_at.pop(language.name, None)
            if self.auto:
                self.log.info("worker host %s runs %s nested", self.host, language.name)

    def refused(self, language, reason: str) -> bool:
        """A runner of ``language`` cannot make nested sandboxes here (``reason``). Returns
        whether the execution may go on in a container on this host (``auto``); with
        ``nested`` it may not (the operator asked for nested sandboxes)."""
        if not self.auto:
            return False
        self._refused_at[language.name] = time.monotonic()
        self._choices[language.name] = ("container", f"auto: {reason}")
        self.log.warning(
            "worker host %s runs %s in containers: its runner cannot nest: %s",
            self.host, language.name, reason,
        )  # fmt: skip
        return True

    def status(self) -> dict:
        """The choices made so far, by language: ``{"kind", "reason"}``."""
        return {
            name: {"kind": kind, "reason": reason}
            for name, (kind, reason) in sorted(self._choices.items())
        }
