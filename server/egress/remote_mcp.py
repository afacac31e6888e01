"""The host side of an agent's remote MCP servers: one set of connections per session.

Trust model: remote MCP servers are reached from the host, never from the sandbox. A
server's bearer token (from the session's vaults) is revealed once, when its connection
opens, and lives only in that connection's HTTP client as the `Authorization` header: it
is not kept here, not logged, and not put in any error message. What a remote tool returns
is untrusted text for the model, like any tool output.

Each connection (the mcp 2.x `Client` over Streamable HTTP) runs in a task of its own in the
caller's task group: the SDK's transport keeps a task group open for the connection's
lifetime, and a transport failure must end that one connection, not the run that happened
to be calling. Connections are opened once and reused by every call of the session;
`open()` only connects servers that are not connected (so a run retries the ones that
failed), and a connection found dropped is reopened once, on the next call.

Errors: `RemoteMcpError.kind` is `mcp_authentication_failed_error` (the server answered
HTTP 401 or 403) or `mcp_connection_failed_error` (anything else that kept us from a
working connection); the message says what to fix.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import anyio.abc
import httpx2
import mcp_types
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from pydantic import JsonValue, ValidationError

from server.core.agents import McpServer
from server.core.tools import RemoteMcpError, RemoteTool, ToolResult

__all__ = [
    "CALL_TIMEOUT_S",
    "CONNECT_TIMEOUT_S",
    "BearerLookup",
    "BearerToken",
    "RemoteMcpError",
    "RemoteMcpServers",
    "RemoteTool",
    "result_content",
]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 30.0
"""Connecting and listing tools: a server that takes longer is treated as unreachable for this run."""
CALL_TIMEOUT_S = 600.0
"""One remote tool call; long enough for slow tools, bounded so a hung server cannot hold a session forever."""
READ_TIMEOUT_S = 300.0
"""The HTTP read timeout: a server may hold a response stream open while a tool works."""
DROP_SETTLE_S = 2.0
"""How long a failed call waits for its connection to finish failing, to tell why it dropped."""

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""The image media types a Messages API tool result accepts; others are described in text."""


class BearerToken(Protocol):
    """A secret that shows its value only when asked (`vault.Secret` is one)."""

    def reveal(self) -> str: ...


BearerLookup = Callable[[str], Awaitable[BearerToken | None]]
"""Gives the bearer token for an MCP server URL, or None to connect without one."""


@dataclass(eq=False)
class _Connection:
    """One open connection; its task ends when `stop` is set or the transport fails."""

    server: McpServer
    client: Client | None = None
    tools: list[RemoteTool] = field(default_factory=list)
    stop: anyio.Event = field(default_factory=anyio.Event)
    ended: anyio.Event = field(default_factory=anyio.Event)
    failure: BaseException | None = None

    @property
    def alive(self) -> bool:
        return self.client is not None and not self.ended.is_set() and not self.stop.is_set()


class RemoteMcpServers:
    """The remote MCP servers of one session: connect, list tools, call them, close.

    Connection tasks run in `task_group` (the server's): closing the group closes them too.
    """

    def __init__(
        self,
        task_group: anyio.abc.TaskGroup,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        call_timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        self._task_group = task_group
        self._connect_timeout_s = connect_timeout_s
        self._call_timeout_s = call_timeout_s
        self._servers: dict[str, McpServer] = {}
        self._connections: dict[str, _Connection] = {}
        self._bearer_for: BearerLookup | None = None
        self._lock = anyio.Lock()

    async def open(self, servers: Sequence[McpServer], bearer_for: BearerLookup) -> list[RemoteMcpError]:
        """Connects every server not connected yet and lists its tools; returns the failures (one per server).

        A server that fails is left out (its tools are not offered) until a later `open()` or call succeeds."""
        self._bearer_for = bearer_for
        self._servers.update({server.name: server for server in servers})
        failures: list[RemoteMcpError] = []
        async with self._lock:
            for server in servers:
                connection = self._connections.get(server.name)
                if connection is not None and connection.alive:
                    continue
                try:
                    await self._connect(server)
                except RemoteMcpError as exc:
                    failures.append(exc)
        return failures

    def tools(self) -> list[RemoteTool]:
        """The tools of every connected server, in the order the servers were given."""
        return [tool for c in self._connections.values() if c.alive for tool in c.tools]

    def connected(self, server_name: str) -> bool:
        connection = self._connections.get(server_name)
        return connection is not None and connection.alive

    async def call(self, server_name: str, tool_name: str, arguments: Mapping[str, JsonValue]) -> ToolResult:
        """Calls a remote tool; a remote `isError` result is an error result, as is a call that times out.

        Raises:
            RemoteMcpError: the server cannot be reached (or refuses our credentials) even after one reopen.
        """
        connection = await self._usable(server_name)
        try:
            return await self._call_once(connection, tool_name, arguments)
        except _Dropped as dropped:
            if not dropped.unsent:
                return ToolResult.text(
                    f"{tool_name}: the connection to MCP server {server_name!r} dropped during the call, so it may or"
                    " may not have run; it is reopened on the next call",
                    is_error=True,
                )
        # The request never reached the tool (the server was down, or it forgot our session): one more try.
        connection = await self._usable(server_name)
        try:
            return await self._call_once(connection, tool_name, arguments)
        except _Dropped:
            return ToolResult.text(f"{tool_name}: MCP server {server_name!r} dropped the connection", is_error=True)

    async def close(self, server_name: str) -> None:
        connection = self._connections.pop(server_name, None)
        if connection is not None:
            connection.stop.set()
            with anyio.move_on_after(5, shield=True):
                await connection.ended.wait()

    async def aclose(self) -> None:
        """Closes every connection (and waits, briefly, for each to end)."""
        for name in list(self._connections):
            await self.close(name)

    # Connections -----------------------------------------------------------------------------------------

    async def _usable(self, server_name: str) -> _Connection:
        async with self._lock:
            connection = self._connections.get(server_name)
            if connection is not None and connection.alive:
                return connection
            server = self._servers.get(server_name)
            if server is None:
                raise RemoteMcpError(
                    "mcp_connection_failed_error",
                    server_name,
                    f"the agent has no MCP server named {server_name!r}; add it to the agent's mcp_servers",
                )
            if connection is not None:
                logger.info("MCP server %r: the connection dropped; reopening it", server_name)
            return await self._connect(server)

    async def _connect(self, server: McpServer) -> _Connection:
        old = self._connections.pop(server.name, None)
        if old is not None:
            old.stop.set()
        try:
            token = await self._bearer_for(str(server.url)) if self._bearer_for is not None else None
        except Exception as exc:  # noqa: BLE001 - a vault that cannot answer (drift, a failing command, no keyring)
            raise RemoteMcpError(
                "mcp_authentication_failed_error",
                server.name,
                f"the credential for MCP server {server.name!r} could not be read: {exc}",
            ) from None
        connection = _Connection(server)
        try:
            await self._task_group.start(self._serve, connection, token)
        except RemoteMcpError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the transport raised, the server is unusable
            raise _connect_error(server, exc, connection, authenticated=token is not None) from None
        self._connections[server.name] = connection
        logger.info("MCP server %r: connected, %d tools", server.name, len(connection.tools))
        return connection

    async def _serve(
        self,
        connection: _Connection,
        token: BearerToken | None,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Holds one connection open until asked to stop or the transport fails."""
        server = connection.server
        statuses: list[int] = []

        async def seen(response: httpx2.Response) -> None:
            statuses.append(response.status_code)

        headers = {"Authorization": f"Bearer {token.reveal()}"} if token is not None else {}
        timeout = httpx2.Timeout(self._connect_timeout_s, read=READ_TIMEOUT_S)
        started = False
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + self._connect_timeout_s) as deadline:
                async with (
                    httpx2.AsyncClient(headers=headers, timeout=timeout, event_hooks={"response": [seen]}) as http,
                    Client(streamable_http_client(str(server.url), http_client=http)) as client,
                ):
                    connection.tools = await _list_tools(client, server.name)
                    connection.client = client
                    deadline.deadline = math.inf
                    started = True
                    task_status.started()
                    await connection.stop.wait()
            if not started:
                raise RemoteMcpError(
                    "mcp_connection_failed_error",
                    server.name,
                    f"MCP server {server.name!r} at {server.url} did not answer within {self._connect_timeout_s:g} s;"
                    " check that it is up and serves MCP over Streamable HTTP at that URL",
                )
        except Exception as exc:
            if not started:
                connection.failure = _AuthRefused(statuses[-1]) if _refused(statuses) else exc
                raise
            # After start, a failure is this connection's end, never the caller's task group's.
            connection.failure = exc
            logger.warning("MCP server %r: the connection dropped (%s)", server.name, _describe(exc))
        finally:
            connection.ended.set()

    async def _call_once(
        self, connection: _Connection, tool_name: str, arguments: Mapping[str, JsonValue]
    ) -> ToolResult:
        client = connection.client
        assert client is not None
        try:
            with anyio.fail_after(self._call_timeout_s):
                result = await client.call_tool(tool_name, dict(arguments))
        except TimeoutError:
            return ToolResult.text(
                f"{tool_name}: MCP server {connection.server.name!r} did not answer within {self._call_timeout_s:g} s",
                is_error=True,
            )
        except MCPError as exc:
            if exc.code == mcp_types.CONNECTION_CLOSED or exc.error.message == "Session terminated":
                raise await _dropped(connection, exc) from None
            return ToolResult.text(f"{tool_name}: MCP server {connection.server.name!r}: {exc.error.message}", True)
        except ValidationError:
            return ToolResult.text(f"{tool_name}: MCP server {connection.server.name!r} sent a malformed result", True)
        return ToolResult(content=result_content(result), is_error=bool(result.is_error))


class _AuthRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _Dropped(Exception):
    """The connection failed during a call; `unsent` when the request certainly never reached the tool."""

    def __init__(self, unsent: bool) -> None:
        super().__init__("connection dropped")
        self.unsent = unsent


async def _dropped(connection: _Connection, exc: MCPError) -> _Dropped:
    connection.stop.set()
    if exc.error.message == "Session terminated":  # the server no longer knows the session: it did not run the call
        return _Dropped(unsent=True)
    with anyio.move_on_after(DROP_SETTLE_S):
        await connection.ended.wait()
    leaves = _leaves(connection.failure) if connection.failure is not None else []
    return _Dropped(unsent=bool(leaves) and all(isinstance(leaf, httpx2.ConnectError) for leaf in leaves))


async def _list_tools(client: Client, server_name: str) -> list[RemoteTool]:
    tools: list[RemoteTool] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        for tool in page.tools:
            schema: dict[str, JsonValue] = json.loads(json.dumps(tool.input_schema or {"type": "object"}))
            tools.append(RemoteTool(server_name, tool.name, tool.description or "", schema))
        cursor = page.next_cursor
        if not cursor:
            return tools


def result_content(result: mcp_types.CallToolResult) -> list[dict[str, JsonValue]]:
    """MCP result content as Messages API `tool_result` blocks (text, image, document)."""
    blocks = [_block(item) for item in result.content]
    if not blocks and result.structured_content is not None:
        blocks = [{"type": "text", "text": json.dumps(result.structured_content)}]
    return blocks or [{"type": "text", "text": "(the tool returned no content)"}]


def _block(item: Any) -> dict[str, JsonValue]:
    if isinstance(item, mcp_types.TextContent):
        return {"type": "text", "text": item.text}
    if isinstance(item, mcp_types.ImageContent) and item.mime_type in IMAGE_TYPES:
        return {"type": "image", "source": {"type": "base64", "media_type": item.mime_type, "data": item.data}}
    if isinstance(item, mcp_types.EmbeddedResource):
        resource = item.resource
        if isinstance(resource, mcp_types.TextResourceContents):
            return {"type": "text", "text": resource.text}
        if resource.mime_type == "application/pdf":
            return {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": resource.blob},
            }
        return {"type": "text", "text": f"[binary resource {resource.uri} ({resource.mime_type}) not shown]"}
    if isinstance(item, mcp_types.ResourceLink):
        return {"type": "text", "text": f"[resource link: {item.name} {item.uri}]"}
    kind = getattr(item, "type", "unknown")
    mime = getattr(item, "mime_type", None)
    return {"type": "text", "text": f"[{kind} content{f' ({mime})' if mime else ''} not shown]"}


def _refused(statuses: Sequence[int]) -> bool:
    return bool(statuses) and statuses[-1] in (401, 403)


def _connect_error(
    server: McpServer, exc: Exception, connection: _Connection, *, authenticated: bool
) -> RemoteMcpError:
    failure = connection.failure or exc
    if isinstance(failure, _AuthRefused):
        fix = (
            f"add a static_bearer credential for that URL with `managed-sessions vault add VAULT --type static_bearer"
            f" --match {server.url}` and attach the vault to the session with vault_ids"
        )
        what = "refused the credential from the session's vaults" if authenticated else "needs a credential"
        return RemoteMcpError(
            "mcp_authentication_failed_error",
            server.name,
            f"MCP server {server.name!r} at {server.url} {what} (HTTP {failure.status}); "
            + ("replace the credential: " if authenticated else "")
            + fix,
        )
    return RemoteMcpError(
        "mcp_connection_failed_error",
        server.name,
        f"could not connect to MCP server {server.name!r} at {server.url} ({_describe(failure)}); check the URL and"
        " that the server is up and serves MCP over Streamable HTTP",
    )


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _describe(exc: BaseException) -> str:
    """The innermost causes, short (transport errors never carry request headers)."""
    text = "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in _leaves(exc))
    return text if len(text) <= 300 else text[:300] + "..."
