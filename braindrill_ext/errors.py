"""Every error Braindrill raises on purpose, in one tree. Engine code raises them and never speaks
HTTP; the REST handlers (``api/handlers.py``, one function) and the kernels turn them into what
users see.

    BraindrillError
    ├── UnknownLanguage          404: no such language (the message lists the known ones)
    ├── UnknownSession           404: no such session for this user
    ├── UnknownFile              404: no such file in a session's state
    ├── InvalidRequest           400: malformed, or limits outside what the operator allows
    │   ├── WrongLanguage        400: a session used with another language than its own
    │   ├── BadFilePath          400: a path leaving the work directory, or in .braindrill/
    │   └── PackageRefused       400: packages off, a name not allowed or preloaded, a bad
    │                            requirement, no such package, no wheel for the sandbox
    ├── PayloadTooLarge          413: code, stdin and files over the operator's size limit
    │   ├── StateTooLarge        413: a file would take a session's state past its cap
    │   └── PackagesTooLarge     413: packages over Packages.max_mib for a kernel or session
    ├── TooManyRequests          429: the user is past a per-user limit (Retry-After)
    │   └── TooManySessions      429: the user has as many sessions as allowed
    ├── NoCapacity               503: the queue is full, or the wait for a slot ran out
    ├── HostUnavailable          503: no worker host could start it (before the code ran)
    │   └── CannotRunHere        the host answers but cannot run this: another host may
    │       ├── ImageMissing     it lacks the language's image
    │       └── CannotNest       its slot runner cannot make nested sandboxes
    ├── StateBudgetFull          a state not kept: the server's memory for states is full (413
    │                            when a file upload is what does not fit)
    ├── BadState                 a kept state whose tar cannot be read (a sandbox cut it)
    └── PackageIndexError        502: the package index could not be reached, or pip failed

    BadRecord (ValueError)       an output record from a sandbox that is not a valid output:
    └── NotJSON                  the record is dropped and the user told; nothing goes further
"""

from docker.errors import DockerException
from requests.exceptions import RequestException

# What a call to a Docker Engine raises when the engine, or the way to it, fails.
TRANSPORT_ERRORS = (DockerException, RequestException, OSError)


def swallow(fut) -> None:
    """Retrieve the outcome of a call nobody waits for any more (no 'never retrieved' noise):
    a done callback."""
    if not fut.cancelled():
        fut.exception()


def reason_of(e: BaseException) -> str:
    """A one-line reason for an error from the Docker SDK (or any other)."""
    return getattr(e, "explanation", None) or str(e) or type(e).__name__


class BraindrillError(Exception):
    """Base class of every error the engine raises on purpose."""


class UnknownLanguage(BraindrillError):
    def __init__(self, name: str, known: list[str]):
        self.name = name
        self.known = known
        super().__init__(f"unknown language {name!r}; known languages: {', '.join(known)}")


class UnknownSession(BraindrillError):
    """No such session for this user: never created, ended, expired, or another user's."""

    def __init__(self, session_id: str):
        self.session_id = session_id
        super().__init__(
            f"no session {session_id!r}: unknown, deleted, expired or not yours "
            "(POST /braindrill/sessions creates one)"
        )


class UnknownFile(BraindrillError):
    """No such file in a session's state (its work directory between executions)."""

    def __init__(self, path: str):
        self.path = path
        super().__init__(f"no file {path!r} in the session's work directory")


class InvalidRequest(BraindrillError):
    """The request is malformed or asks for limits outside what the operator allows."""


class WrongLanguage(InvalidRequest):
    """A session used with another language than its own."""


class BadFilePath(InvalidRequest):
    """A file path that is not a plain relative path inside the work directory, or that names
    ``.braindrill/`` (the sandbox's own files)."""


class PayloadTooLarge(BraindrillError):
    """Code, stdin or files exceed the operator's size limit."""


class StateTooLarge(PayloadTooLarge):
    """Writing a file would take a session's state past its cap (``state_mib``)."""


class PackagesTooLarge(PayloadTooLarge):
    """The packages of a kernel or session would take more than ``Packages.max_mib``."""


class PackageRefused(InvalidRequest):
    """A package that cannot be installed: installation is off, the name is not allowed (or
    preloaded in the sandbox), the requirement is malformed, no such package exists, or it has
    no wheel for the sandbox's Python and platform (``engine/packages.py``)."""


class TooManyRequests(BraindrillError):
    """The user is past a per-user limit (concurrent executions or rate)."""

    def __init__(self, message: str, retry_after: int = 1):
        self.retry_after = retry_after
        super().__init__(message)


class TooManySessions(TooManyRequests):
    """The user already has ``RestSessionManager.max_per_user`` sessions."""


class NoCapacity(BraindrillError):
    """Every slot is busy and the queue is full, or the wait in the queue ran out."""

    def __init__(self, message: str, retry_after: int = 1):
        self.retry_after = retry_after
        super().__init__(message)


class HostUnavailable(BraindrillError):
    """A worker host's Docker Engine does not answer, or refused to create or start a sandbox.

    Raised before the code was delivered, so the execution may be retried on another host.
    """

    def __init__(self, host: str, reason: str):
        self.host = host
        self.reason = reason
        super().__init__(f"worker host {host!r} is unavailable: {reason}")


class CannotRunHere(HostUnavailable):
    """The worker host answers, but cannot run this language (as asked): another host may. The
    host stays in scheduling."""


class ImageMissing(CannotRunHere):
    """The worker host lacks the language's runtime image."""


class CannotNest(CannotRunHere):
    """A slot runner cannot make nested sandboxes on this host with this image (no user
    namespaces for it, or no Python in the image)."""


class StateBudgetFull(BraindrillError):
    """Keeping a state would take the server past ``StateStore.budget_mib``."""


class BadState(BraindrillError):
    """A kept state whose tar cannot be read (a sandbox cut it short while a file changed)."""


class PackageIndexError(BraindrillError):
    """The package index could not be reached, or ``pip download`` failed for another reason
    than the request's."""


class BadRecord(ValueError):
    """An output record that is not a valid Jupyter output (``sandbox/records.py``): it is
    dropped and the reason shown."""


class NotJSON(BadRecord):
    """A base64-encoded value of a JSON type that is text but not JSON."""

    def __init__(self, mime: str, text: str):
        self.text = text
        super().__init__(f"the {mime} value is not JSON")
