"""What the agent loop needs from the rest of the server, as Protocols the loop owns.

The services (the session log), the hands (a session's sandbox) and egress (remote MCP servers, repositories)
satisfy them structurally; the composition root (`services/runtime.py`) wires them, and tests pass fakes.
The loop imports none of those packages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

from pydantic import JsonValue

from server.core.environments import EnvironmentSpec
from server.core.events import Event, EventBody
from server.core.sessions import Session
from server.core.skills import SkillSummary
from server.core.tools import RemoteMcpError, RemoteTool, ToolResult

__all__ = [
    "FileContents",
    "Previews",
    "RemoteMcp",
    "ResourceDelivery",
    "SessionLog",
    "SessionSandboxes",
    "SkillListing",
    "ToolRunner",
]


class SessionLog(Protocol):
    """A session and its append-only event log (the session service)."""

    async def get(self, session_id: str) -> Session:
        """The session, its status and usage folded from its events."""
        ...

    async def append(self, session_id: str, events: Sequence[EventBody]) -> list[Event]:
        """Appends the events in one write (waking whoever waits on the log) and returns them as stored."""
        ...

    async def read_events(self, session_id: str, after_seq: int) -> list[Event]:
        """Every event after `after_seq`, oldest first."""
        ...

    def newest_seq(self, session_id: str) -> int | None:
        """The newest seq appended through this object, if any (lets a run skip reading its log again)."""
        ...

    def run_ended(self, session_id: str) -> None:
        """Tells waiters the session's run is over, even if its last event came earlier."""
        ...


class ToolRunner(Protocol):
    """Where a session's agent tools run (its sandbox)."""

    async def execute(self, tool_name: str, tool_input: Mapping[str, JsonValue]) -> ToolResult: ...


class SessionSandboxes(Protocol):
    """The sandboxes of sessions: one per session, started on first use."""

    def tools(self, session_id: str, environment: EnvironmentSpec, *, mcp_hosts: Sequence[str] = ()) -> ToolRunner:
        """The session's tools; `mcp_hosts` are its agent's MCP servers' hosts (which limited egress may open)."""
        ...

    async def stop(self, session_id: str, environment: EnvironmentSpec) -> None:
        """Stops what runs in the session's sandbox; its files stay."""
        ...

    async def build_image(self, image: str) -> None:
        """Builds the server's default image `image` (what `ImageMissingError` names): one build per image at a
        time, which every caller waits for. Raises `SandboxUnavailableError` when it fails."""
        ...


class ResourceDelivery(Protocol):
    """Puts a session's resources (repositories) into its sandbox before its first turn."""

    async def deliver(self, session: Session) -> list[EventBody]:
        """The `session.error` events of the resources that could not be delivered (empty when all were)."""
        ...


class SkillListing(Protocol):
    """The names and descriptions of a session's pinned skills, for its system prompt."""

    async def summaries(self, session: Session) -> list[SkillSummary]: ...


class FileContents(Protocol):
    """Uploaded files, for the image and document blocks that name one (`source: {type: "file", file_id}`)."""

    async def as_base64(self, file_id: str) -> tuple[str, str]:
        """The file's mime type and its bytes in base64; an unknown id raises `NotFoundError`."""
        ...


class RemoteMcp(Protocol):
    """The remote MCP servers of sessions, reached from the host with the sessions' credentials."""

    async def open(self, session: Session) -> tuple[list[RemoteTool], list[RemoteMcpError]]: ...

    async def call(
        self, session_id: str, server_name: str, tool_name: str, tool_input: Mapping[str, JsonValue]
    ) -> ToolResult: ...

    async def close(self, session_id: str) -> None: ...

    async def aclose(self) -> None: ...


class Previews(Protocol):
    """Where a turn's text goes while the model streams it, before its `agent.message` exists (stream clients
    that asked for previews). Best-effort: each call returns at once and never raises."""

    def started(self, session_id: str, event_id: str, event_type: Literal["agent.message", "agent.thinking"]) -> None:
        """An event is being produced; `event_id` is the id it will be stored under."""
        ...

    def text(self, session_id: str, event_id: str, text: str) -> None:
        """More of the text of the agent.message `event_id`."""
        ...
