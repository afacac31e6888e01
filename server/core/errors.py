"""Errors a caller can fix, and how they are told.

    ServerError                  a failure the client is told about (api_error, 500)
    ├── NotFoundError            an id that names nothing, or nothing any more (not_found_error, 404)
    ├── InvalidRequestError      an argument that passed the schema but not the rules (invalid_request_error, 400)
    ├── TooLargeError            a body or file past its size limit (request_too_large, 413)
    ├── ConflictError            the object is in the wrong state for this call (invalid_request_error, 409)
    │   └── SessionBusyError     the session is running
    ├── SandboxUnavailableError  the sandbox cannot be started or reached (api_error, 500)
    │   ├── EngineUnreachableError  the Docker engine does not answer; it may come back
    │   └── ImageMissingError       the server's default image is not on the engine; building it fixes that
    ├── DataDirInUseError        another server owns the data dir (start-up only)
    ├── DataDirUnwritableError   the store cannot write: its disk is full, read-only or failing
    ├── UnexpectedError          anything else a tool raised (the top-level guard's message)
    └── ConfigError              a configuration variable has an unusable value (start-up only)

These are plain exceptions: nothing below a front door knows which protocol tells the client. Each front maps
them once, at its edge: MCP turns `ServerError` into a tool error carrying the message (`is_error=True`, an
INFO log line, no traceback); a REST front answers `http_status` with an error body of type `error_type` (the
Managed Agents API's error types; a conflict is an `invalid_request_error` with 409, as there). Anything else
is a crash: the client sees a generic message and the traceback goes to stderr. Messages name the item with
`!r` and say what to do next; they never contain a secret.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from vault.errors import ArchivedError, CredentialConflictError, CredentialNotFoundError, VaultError, VaultNotFoundError

__all__ = [
    "ConfigError",
    "ConflictError",
    "DataDirInUseError",
    "DataDirUnwritableError",
    "EngineUnreachableError",
    "ErrorType",
    "ImageMissingError",
    "InvalidRequestError",
    "NotFoundError",
    "SandboxUnavailableError",
    "ServerError",
    "SessionBusyError",
    "TooLargeError",
    "UnexpectedError",
    "from_vault_error",
]

ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
]
"""The error types of the Managed Agents API, which a client of either front may already handle."""


class ServerError(Exception):
    """A failure the client is told about; each front maps it once (MCP: a tool error; REST: status + body)."""

    error_type: ClassVar[ErrorType] = "api_error"
    http_status: ClassVar[int] = 500


class NotFoundError(ServerError, LookupError):
    """An id that names no object."""

    error_type: ClassVar[ErrorType] = "not_found_error"
    http_status: ClassVar[int] = 404


class InvalidRequestError(ServerError, ValueError):
    """An argument that is well-typed but breaks a rule (unknown reference, bad combination)."""

    error_type: ClassVar[ErrorType] = "invalid_request_error"
    http_status: ClassVar[int] = 400


class TooLargeError(ServerError):
    """A body or a file is past its size limit; the message states the limit."""

    error_type: ClassVar[ErrorType] = "request_too_large"
    http_status: ClassVar[int] = 413


class ConflictError(ServerError):
    """The object exists but its state forbids the call (archived, duplicate name)."""

    error_type: ClassVar[ErrorType] = "invalid_request_error"
    http_status: ClassVar[int] = 409


class SessionBusyError(ConflictError):
    """The session is running; the call has to wait until it is idle."""


class SandboxUnavailableError(ServerError):
    """The sandbox cannot be started (no Docker engine, image missing, a failed package install)."""


class EngineUnreachableError(SandboxUnavailableError):
    """The Docker engine does not answer (stopped, restarting, its socket gone): it may well come back."""


class ImageMissingError(SandboxUnavailableError):
    """The server's default sandbox image (`image`) is not on the engine: the agent loop has it built, once for
    every session that waits for it, and tries again. Raised before anything reached a sandbox."""

    def __init__(self, message: str, image: str) -> None:
        super().__init__(message)
        self.image = image


class DataDirInUseError(ServerError):
    """Another server process holds the data dir."""


class DataDirUnwritableError(ServerError):
    """A store write failed for lack of space, a read-only file system or an I/O error.

    The write was rolled back whole, so nothing is half-recorded; the message names the data dir and the fix."""


class UnexpectedError(ServerError):
    """A failure nobody anticipated; its traceback is in the server's log, the message says so."""


class ConfigError(ServerError):
    """A configuration variable has an unusable value."""


def from_vault_error(exc: VaultError) -> ServerError:
    """The server error a vault failure is reported as (its message already says what to do)."""
    if isinstance(exc, VaultNotFoundError | CredentialNotFoundError):
        return NotFoundError(str(exc))
    if isinstance(exc, CredentialConflictError | ArchivedError):
        return ConflictError(str(exc))
    return InvalidRequestError(str(exc))
