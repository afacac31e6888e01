"""Helpers every tool module shares: the runtime, argument types, and the result shape."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, StrictBool, StrictInt

from server.core.agents import MAX_VERSION
from server.services.runtime import Runtime

__all__ = [
    "DESTRUCTIVE",
    "READ_ONLY",
    "WRITE",
    "Ctx",
    "Cursor",
    "IncludeArchived",
    "Limit",
    "Version",
    "reply",
    "runtime",
]

Ctx = Context[Runtime, Any]

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)

# Tool arguments are strict: pydantic would otherwise take `true` for 1, 1 for true and "5" for 5.
Limit = Annotated[StrictInt, Field(ge=1, le=100, description="Page size, 1 to 100.")]
Cursor = Annotated[str | None, Field(default=None, max_length=64, description="next_cursor from the previous page.")]
IncludeArchived = Annotated[StrictBool, Field(description="Also list archived objects.")]
Version = Annotated[StrictInt, Field(ge=1, le=MAX_VERSION)]
"""An agent version: versions start at 1; the bound keeps a number the store cannot hold out of it."""


def runtime(ctx: Ctx) -> Runtime:
    return ctx.request_context.lifespan_context


def reply(result: BaseModel, summary: str) -> CallToolResult:
    """Structured content plus a text block: a one-line summary, then the same object as JSON
    (for clients that show models only the text)."""
    text = f"{summary}\n{result.model_dump_json(exclude_none=True)}"
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=result.model_dump(mode="json"),
    )
