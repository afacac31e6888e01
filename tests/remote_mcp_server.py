"""A real remote MCP server for tests: mcp 2.x `MCPServer` over Streamable HTTP on loopback, behind a bearer token.

It stands in for the third-party MCP servers an agent's `mcp_servers` name. A tiny ASGI middleware in front of
the SDK's app answers `401` (with `WWW-Authenticate: Bearer`) unless the request carries
`Authorization: Bearer <token>`, and records every request it saw (headers, the MCP method, the client's
address), so tests can tell how many connections and handshakes a client made and what it sent.

Tools: `add(a, b)`, `echo_token()` (returns the bearer token it received, for redaction tests), `slow(seconds)`,
`fail(message)` (an `isError` result) and `pixel()` (an image). `token` can be changed while serving; `stop()`
and `start()` drop and bring back the server on the same port (a dropped connection).

Trust: it binds 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import anyio
import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context, Image
from mcp.server.mcpserver.exceptions import ToolError

__all__ = ["PIXEL_PNG", "RemoteMcpServer", "SeenRequest"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
"""A 1x1 PNG."""


@dataclass(frozen=True)
class SeenRequest:
    """One HTTP request the server received (authorized or not)."""

    method: str
    path: str
    headers: dict[str, str]
    mcp_method: str | None
    client_port: int | None
    status: int | None = None


def _build_mcp() -> MCPServer:
    mcp = MCPServer("test-remote", version="0.1.0", log_level="WARNING")

    @mcp.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @mcp.tool()
    def echo_token(ctx: Context) -> str:
        """Return the bearer token this request carried."""
        header = (ctx.headers or {}).get("authorization", "")
        return header.removeprefix("Bearer ")

    @mcp.tool()
    async def slow(seconds: float) -> str:
        """Wait, then say how long."""
        await anyio.sleep(seconds)
        return f"waited {seconds} s"

    @mcp.tool()
    def fail(message: str) -> str:
        """Always fails with the message."""
        raise ToolError(message)

    @mcp.tool()
    def pixel() -> Image:
        """A one-pixel PNG."""
        return Image(data=PIXEL_PNG, format="png")

    return mcp


class RemoteMcpServer:
    """Serves the test MCP server at `url` while the context is open.

    Example:
        with RemoteMcpServer(token="s3cret") as remote:
            ... connect to remote.url with `Authorization: Bearer s3cret` ...
            assert remote.count("tools/list") == 1
    """

    def __init__(self, token: str, *, status_for_bad_token: int = 401) -> None:
        self.token = token
        self.status_for_bad_token = status_for_bad_token
        self._seen: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    def __enter__(self) -> RemoteMcpServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/mcp"

    @property
    def seen(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._seen)

    def count(self, mcp_method: str) -> int:
        """How many authorized requests carried this MCP method (e.g. 'tools/call', 'initialize')."""
        return sum(1 for r in self.seen if r.mcp_method == mcp_method and r.status != 401)

    def start(self) -> None:
        """Starts serving (on the same port as before after a `stop()`); returns once it accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        self._socket = sock
        mcp = _build_mcp()
        app = self._guard(mcp.streamable_http_app())
        config = uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=1)
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="remote-mcp")
        self._thread.start()
        for _ in range(500):
            if server.started:
                return
            if not self._thread.is_alive():
                break
            threading.Event().wait(0.01)
        raise RuntimeError("the test MCP server did not start")

    def stop(self) -> None:
        """Stops serving and closes every connection (clients see the connection drop)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def _guard(self, app: App) -> App:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            body, receive = await _peek_body(receive)
            client = scope.get("client")
            authorized = headers.get("authorization") == f"Bearer {self.token}"
            seen = SeenRequest(
                method=scope["method"],
                path=scope["path"],
                headers=headers,
                mcp_method=headers.get("mcp-method") or _json_method(body),
                client_port=client[1] if client else None,
                status=None if authorized else self.status_for_bad_token,
            )
            with self._lock:
                self._seen.append(seen)
            if not authorized:
                await send(
                    {
                        "type": "http.response.start",
                        "status": self.status_for_bad_token,
                        "headers": [(b"www-authenticate", b'Bearer error="invalid_token"'), (b"content-length", b"0")],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return
            await app(scope, receive, send)

        return guarded


async def _peek_body(receive: Receive) -> tuple[bytes, Receive]:
    """Reads the whole request body, and gives back a `receive` that replays it to the app."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _json_method(body: bytes) -> str | None:
    try:
        message = json.loads(body) if body else None
    except ValueError:
        return None
    return str(message.get("method")) if isinstance(message, dict) and message.get("method") else None
