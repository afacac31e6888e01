"""The seam between the agent loop and where tools run.

The loop calls `Sandbox.execute(tool_name, tool_input)` and gets a `ToolResult`
whose content blocks are already in the Messages API's `tool_result` shape
(text, image, document). It never sees Docker, containers or the helper.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import JsonValue

from server.core.errors import ServerError

__all__ = [
    "DEFAULT_CPUS",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_PIDS_LIMIT",
    "EngineUnreachableError",
    "Sandbox",
    "SandboxUnavailableError",
    "ToolResult",
]

DEFAULT_MEMORY_MB = 2_048
DEFAULT_CPUS = 1.0
DEFAULT_PIDS_LIMIT = 512
"""Enough for a build with parallel jobs; low enough that a fork bomb stops at the limit, not the host."""


class SandboxUnavailableError(ServerError):
    """The sandbox cannot be started (no Docker engine, image missing, a failed package install)."""


class EngineUnreachableError(SandboxUnavailableError):
    """The Docker engine does not answer (stopped, restarting, its socket gone): it may well come back."""


ContentBlock = dict[str, JsonValue]


@dataclass(frozen=True)
class ToolResult:
    """What a tool gave back, as `tool_result` content blocks."""

    content: list[ContentBlock] = field(default_factory=list)
    is_error: bool = False

    @classmethod
    def text(cls, text: str, is_error: bool = False) -> ToolResult:
        return cls(content=[{"type": "text", "text": text}], is_error=is_error)

    def as_text(self) -> str:
        """The text blocks joined (for logs and tests); other blocks show as their type."""
        return "\n".join(str(b["text"]) if b.get("type") == "text" else f"[{b.get('type')}]" for b in self.content)


class Sandbox(Protocol):
    async def execute(self, tool_name: str, tool_input: Mapping[str, JsonValue]) -> ToolResult: ...
