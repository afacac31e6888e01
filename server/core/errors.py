"""Errors a caller can fix, and how they are told.

    ServerError                  a failure the MCP client is told about (a tool error)
    ├── NotFoundError            an id that names nothing (or nothing any more)
    ├── InvalidRequestError      an argument that passed the schema but not the rules
    ├── ConflictError            the object is in the wrong state for this call
    │   └── SessionBusyError     the session is running
    ├── DataDirInUseError        another server owns the data dir (start-up only)
    ├── DataDirUnwritableError   the store cannot write: its disk is full, read-only or failing
    ├── UnexpectedError          anything else a tool raised (the top-level guard's message)
    └── ConfigError              a configuration variable has an unusable value (start-up only)

`ServerError` is an MCP `ToolError`, so raising one anywhere below a tool gives
the client `is_error=True` and the message (and an INFO log line, no traceback). Anything else is a crash: the client
sees a generic message and the traceback goes to stderr. Messages name the
item with `!r` and say what to do next; they never contain a secret.
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError

from vault.errors import CredentialConflictError, CredentialNotFoundError, VaultError, VaultNotFoundError

__all__ = [
    "ConfigError",
    "ConflictError",
    "DataDirInUseError",
    "DataDirUnwritableError",
    "EngineUnreachableError",
    "InvalidRequestError",
    "NotFoundError",
    "SandboxUnavailableError",
    "ServerError",
    "SessionBusyError",
    "UnexpectedError",
    "from_vault_error",
]


class ServerError(ToolError):
    """A failure the MCP client is told about, as a tool error carrying this message."""


class NotFoundError(ServerError, LookupError):
    """An id that names no object."""


class InvalidRequestError(ServerError, ValueError):
    """An argument that is well-typed but breaks a rule (unknown reference, bad combination)."""


class ConflictError(ServerError):
    """The object exists but its state forbids the call (archived, duplicate name)."""


class SessionBusyError(ConflictError):
    """The session is running; the call has to wait until it is idle."""


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
    """The tool error a vault failure is reported as (its message already says what to do)."""
    if isinstance(exc, VaultNotFoundError | CredentialNotFoundError):
        return NotFoundError(str(exc))
    if isinstance(exc, CredentialConflictError):
        return ConflictError(str(exc))
    return InvalidRequestError(str(exc))


class SandboxUnavailableError(ServerError):
    """The sandbox cannot be started (no Docker engine, image missing, a failed package install)."""


class EngineUnreachableError(SandboxUnavailableError):
    """The Docker engine does not answer (stopped, restarting, its socket gone): it may well come back."""
