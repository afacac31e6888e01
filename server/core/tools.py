"""What a tool gives back, in the Messages API's `tool_result` shape: used by the brain, the hands and egress."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import JsonValue

__all__ = ["ContentBlock", "RemoteMcpError", "RemoteMcpErrorKind", "RemoteTool", "ToolResult"]


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


RemoteMcpErrorKind = Literal["mcp_connection_failed_error", "mcp_authentication_failed_error"]


class RemoteMcpError(Exception):
    """A remote MCP server could not be used; `kind` is the session.error type to record."""

    def __init__(self, kind: RemoteMcpErrorKind, server_name: str, message: str) -> None:
        super().__init__(message)
        self.kind: RemoteMcpErrorKind = kind
        self.server_name = server_name


@dataclass(frozen=True)
class RemoteTool:
    """A tool a remote server offers, as its server describes it."""

    server_name: str
    name: str
    description: str
    input_schema: dict[str, JsonValue]
