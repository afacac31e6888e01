"""Every session's remote MCP connections, kept across its runs until the session is archived or deleted.

The agent loop asks for a session's tools at the start of each run and calls them by server and tool name;
connections are opened on first use, reused by later runs, and reopened when they failed. The bearer token for a
server's URL comes from the session's vaults through `bearer_for`, which the composition root wires to the vault.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import anyio.abc
from pydantic import JsonValue

from server.core.sessions import Session
from server.core.tools import RemoteMcpError, RemoteTool, ToolResult
from server.egress.remote_mcp import BearerToken, RemoteMcpServers

__all__ = ["McpBearerLookup", "RemoteMcpSessions"]

McpBearerLookup = Callable[[Session, str], Awaitable[BearerToken | None]]
"""The bearer token (a `vault.Secret`) for a session's MCP server URL, or None to connect without one."""


class RemoteMcpSessions:
    """The remote MCP servers of every session, one `RemoteMcpServers` per session id."""

    def __init__(self, task_group: anyio.abc.TaskGroup, bearer_for: McpBearerLookup) -> None:
        self._task_group = task_group
        self._bearer_for = bearer_for
        self._sessions: dict[str, RemoteMcpServers] = {}

    async def open(self, session: Session) -> tuple[list[RemoteTool], list[RemoteMcpError]]:
        """Connects the agent's servers not connected yet; returns the tools offered and one failure per server."""
        if not session.agent.mcp_servers:
            return [], []
        remote = self._sessions.get(session.id)
        if remote is None:
            remote = self._sessions[session.id] = RemoteMcpServers(self._task_group)
        lookup = self._bearer_for

        async def bearer_for(url: str) -> BearerToken | None:
            return await lookup(session, url)

        failures = await remote.open(session.agent.mcp_servers, bearer_for)
        return remote.tools(), failures

    async def call(
        self, session_id: str, server_name: str, tool_name: str, tool_input: Mapping[str, JsonValue]
    ) -> ToolResult:
        """Calls a remote tool of the session (raises `RemoteMcpError` when its server cannot be used)."""
        remote = self._sessions.get(session_id)
        if remote is None:  # a run opens them first; a stale use after an archive
            return ToolResult.text(f"{tool_name}: the MCP server is not connected", is_error=True)
        return await remote.call(server_name, tool_name, tool_input)

    async def close(self, session_id: str) -> None:
        """Closes the session's connections (on archive and delete); a later run opens them again."""
        remote = self._sessions.pop(session_id, None)
        if remote is not None:
            await remote.aclose()

    async def aclose(self) -> None:
        """Closes every session's connections (server shutdown)."""
        for session_id in list(self._sessions):
            await self.close(session_id)
