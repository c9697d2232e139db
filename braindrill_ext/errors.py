"""The engine's errors. Only the handlers turn them into HTTP responses."""

from docker.errors import DockerException
from requests.exceptions import RequestException

# What a call to a Docker Engine raises when the engine, or the way to it, fails.
TRANSPORT_ERRORS = (DockerException, RequestException, OSError)


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


class InvalidRequest(BraindrillError):
    """The request is malformed or asks for limits outside what the operator allows."""


class PayloadTooLarge(BraindrillError):
    """Code, stdin or files exceed the operator's size limit."""


class NoCapacity(BraindrillError):
    """Every slot is busy and the queue is full, or the wait in the queue ran out."""

    def __init__(self, message: str, retry_after: int = 1):
        self.retry_after = retry_after
        super().__init__(message)


class TooManyRequests(BraindrillError):
    """The user is past a per-user limit (concurrent executions or rate)."""

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
