"""The MCP server's top-level guard: no tool call ends in the SDK's bare "Error executing tool X".

A `ServerError` already carries its message (what went wrong, what to do). Anything else is a
crash the code did not anticipate; the SDK would answer it with the tool's name alone. Here it
gets a message that says what kind of failure it was and where the details are, and its
traceback is logged once, at ERROR, for the operator.
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
from typing_extensions import override

from server.errors import UnexpectedError

__all__ = ["GuardedMCPServer", "crash_message"]

logger = logging.getLogger(__name__)


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


def _original(exc: BaseException) -> BaseException:
    """The exception the tool raised, under the SDK's wrappers."""
    while isinstance(exc, ToolError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc
