"""The MCP server's top-level guard: every tool failure reaches the client as a short message that says what to do.

- A crash the code did not anticipate would reach the client as the SDK's bare "Error executing
  tool X". Here it gets a message that says what kind of failure it was and where the details
  are, and its traceback is logged once, at ERROR, for the operator.
- Arguments that fail the input schema are listed as `field: what is wrong`, one after the
  other, without pydantic's echo of each input and its documentation links: a call with many
  bad fields would otherwise answer with pages.
- No message is longer than `MAX_ERROR_CHARS`; a longer one (a helper echoing a 4 KiB path)
  keeps its beginning and its end, where the fix is.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from mcp.server import MCPServer
from mcp.server.lowlevel.server import LifespanResultT
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import ValidationError
from typing_extensions import override

from server.core.errors import InvalidRequestError, UnexpectedError

__all__ = ["MAX_ERROR_CHARS", "GuardedMCPServer", "crash_message"]

logger = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2_000
"""A tool error is read by a person or a model: a few lines say what is wrong; more is noise."""
MAX_LISTED_PROBLEMS = 8


class GuardedMCPServer(MCPServer[LifespanResultT]):
    """`MCPServer`, with every unexpected tool failure turned into a tool error that says what to do."""

    @override
    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[LifespanResultT, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as exc:
            crash = _original(exc)
            logger.error("tool %s crashed", name, exc_info=crash)
            raise UnexpectedError(f"Error executing tool {name}: {crash_message(crash)}") from exc
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                raise InvalidRequestError(_bounded(f"Error executing tool {name}: {_problems(exc.__cause__)}")) from exc
            if len(str(exc)) > MAX_ERROR_CHARS:
                raise type(exc)(_bounded(str(exc))) from exc
            raise


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


def _problems(exc: ValidationError) -> str:
    """'invalid arguments: field: what is wrong; ...', at most `MAX_LISTED_PROBLEMS` of them."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    listed = [f"{'.'.join(str(part) for part in e['loc']) or 'arguments'}: {e['msg']}" for e in errors]
    more = len(listed) - MAX_LISTED_PROBLEMS
    shown = "; ".join(listed[:MAX_LISTED_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
    return f"invalid arguments ({len(listed)} problem{'s' if len(listed) != 1 else ''}): {shown}"


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
