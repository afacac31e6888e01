"""The MCP server's top-level guard: every tool failure reaches the client as a short message that says what to do.

- The core raises plain `ServerError`s (and the vault `VaultError`s); here, and only here, they become the
  SDK's `ToolError` with the same message, so the client sees `is_error=True` and the message, and the log
  an INFO line without a traceback.
- A crash the code did not anticipate would reach the client as the SDK's bare "Error executing
  tool X". Here it gets a message that says what kind of failure it was and where the details
  are, and its traceback is logged once, at ERROR, for the operator.
- Arguments that fail the input schema are listed as `field: what is wrong`, one after the
  other, without pydantic's echo of each input and its documentation links: a call with many
  bad fields would otherwise answer with pages.
- A resource read that fails with a `ServerError` answers a JSON-RPC error with its message: -32602 (invalid
  params) when the caller named something wrong (a 4xx), -32603 otherwise. An unknown prompt or resource URI
  is -32602 with a message that says what exists, never the SDK's code 0 and a traceback.
- No message is longer than `MAX_ERROR_CHARS`; a longer one (a helper echoing a 4 KiB path)
  keeps its beginning and its end, where the fix is.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from mcp.server import MCPServer
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.lowlevel.server import LifespanResultT
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import (
    ResourceError,
    ResourceNotFoundError,
    ToolError,
    UnexpectedResourceError,
    UnexpectedToolError,
)
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult, GetPromptResult, InputRequiredResult
from pydantic import AnyUrl, ValidationError
from typing_extensions import override

from server.core.errors import ServerError
from server.core.validation import describe_problems
from vault.errors import VaultError

__all__ = ["MAX_ERROR_CHARS", "GuardedMCPServer", "crash_message"]

logger = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2_000
"""A tool error is read by a person or a model: a few lines say what is wrong; more is noise."""


class GuardedMCPServer(MCPServer[LifespanResultT]):
    """`MCPServer`, with every unexpected tool failure turned into a tool error that says what to do."""

    on_answer: Callable[[], None] | None = None
    """Called after each tool call is answered (the runtime's background work waits for the first one)."""

    @override
    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[LifespanResultT, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await self._guarded_call(name, arguments, context)
        finally:
            if self.on_answer is not None:
                self.on_answer()

    async def _guarded_call(
        self, name: str, arguments: dict[str, Any], context: Context[LifespanResultT, Any] | None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ServerError | VaultError):  # anticipated: the core does not know about MCP
                raise ToolError(_bounded(f"Error executing tool {name}: {cause}")) from cause
            crash = _original(exc)
            logger.error("tool %s crashed", name, exc_info=crash)
            raise ToolError(f"Error executing tool {name}: {crash_message(crash)}") from exc
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(_bounded(f"Error executing tool {name}: {describe_problems(exc.__cause__)}")) from exc
            if len(str(exc)) > MAX_ERROR_CHARS:
                raise ToolError(_bounded(str(exc))) from exc
            raise

    @override
    async def read_resource(
        self, uri: AnyUrl | str, context: Context[LifespanResultT, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        try:
            return await super().read_resource(uri, context)
        except UnexpectedResourceError as exc:
            cause = exc.__cause__
            if isinstance(cause, ServerError | VaultError):
                raise _resource_error(cause) from cause
            raise
        except ResourceNotFoundError as exc:
            if exc.__cause__ is None and str(exc).startswith("Unknown resource"):  # no template matched the URI
                raise ResourceNotFoundError(f"unknown resource {str(uri)!r}; {RESOURCE_HINT}") from exc
            raise

    @override
    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[LifespanResultT, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        known = [prompt.name for prompt in await self.list_prompts()]
        if name not in known:  # the SDK would answer code 0 and log a traceback
            offered = f"the prompts are {known}" if known else "this server offers no prompts"
            raise MCPError(code=INVALID_PARAMS, message=f"unknown prompt {name!r}: {offered}; use its tools instead")
        return await super().get_prompt(name, arguments, context)


RESOURCE_HINT = (
    "the resources are session://{session_id} and session://{session_id}/outputs/{path} "
    "(resources/templates/list); list_sessions shows the session ids"
)


def _resource_error(exc: ServerError | VaultError) -> ResourceError:
    """-32602 when the caller named something wrong or missing, -32603 when the server could not answer."""
    status = exc.http_status if isinstance(exc, ServerError) else 400
    if status < 500:
        return ResourceNotFoundError(_bounded(str(exc)))
    return ResourceError(_bounded(str(exc)))


def crash_message(crash: BaseException) -> str:
    """What a client is told about an exception nobody anticipated (never its text: it may hold anything)."""
    kind = type(crash).__name__
    if isinstance(crash, sqlite3.Error):
        what = f"the store failed ({kind})"
    else:
        what = f"the server failed unexpectedly ({kind})"
    return (
        f"{what}; the traceback is in the server's log. Check with the get_ or list_ tools whether the call "
        "took effect before you retry it, and report the failure if it repeats"
    )


def _bounded(message: str) -> str:
    if len(message) <= MAX_ERROR_CHARS:
        return message
    head, tail = MAX_ERROR_CHARS * 3 // 5, MAX_ERROR_CHARS // 4
    return f"{message[:head]} …[{len(message) - head - tail} chars cut]… {message[-tail:]}"


def _original(exc: BaseException) -> BaseException:
    """The exception the tool raised, under the SDK's wrappers."""
    while isinstance(exc, ToolError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc
