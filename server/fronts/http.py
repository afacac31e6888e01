"""The HTTP server: MCP over Streamable HTTP at `/mcp` and the Managed Agents REST API at `/v1`, one process,
one runtime, one token, loopback by default.

Security, in order of the checks a request meets:

1. The token. Every request needs `Authorization: Bearer <token>` (MCP clients, `anthropic` SDK 2.10+) or
   `x-api-key: <token>` (older `anthropic` SDKs); anything else gets a 401 that names the header to send and
   nothing else (not which part was wrong). Tokens are compared in constant time. This is a static shared
   secret, not OAuth, so no OAuth metadata is advertised (a client would go looking for an authorization
   server that does not exist).
   The live view's own files under `/ui` (`server.fronts.web`) are the one exception: they hold no data, and
   the page must load before its user can log in.
2. For `/mcp`, Host/Origin checks (DNS-rebinding protection) from the MCP SDK, always on: loopback names, the
   bound host, and `MANAGED_SESSIONS_ALLOWED_HOSTS`.

The token is `MANAGED_SESSIONS_TOKEN` when set. Otherwise one is generated on
first start, kept in the OS keyring and printed once to the terminal; a
non-loopback bind without an explicit token is refused, since a token nobody
chose on purpose should not guard a network-facing server.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from server.core.config import ServerConfig
from server.core.heap import settle_heap
from server.fronts.mcp.event_store import MemoryEventStore
from server.fronts.mcp.server import build_server
from server.fronts.rest import rest_mount
from server.fronts.web import PUBLIC_PATHS, web_routes
from server.services.http_token import HttpSetupError, HttpToken
from server.services.runtime import Runtime, http_token, open_runtime

__all__ = ["BearerAuth", "http_app", "resolve_token", "serve_http"]

logger = logging.getLogger(__name__)

MCP_RETRY_MS = 500
"""How soon an MCP client whose stream dropped reconnects to resume it (sent on each stream's priming event)."""

RuntimeOpener = Callable[[ServerConfig], AbstractAsyncContextManager[Runtime]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(config: ServerConfig, host: str, tokens: HttpToken | None = None) -> str:
    """The token HTTP clients must present (see the module docstring for where it comes from)."""
    tokens = tokens if tokens is not None else http_token(config)
    configured = tokens.configured()
    if configured:
        return configured
    if not is_loopback(host):
        raise HttpSetupError(
            f"refusing to listen on {host!r} (not loopback) without an explicit token: "
            "set MANAGED_SESSIONS_TOKEN to a long random value and give the same value to your clients"
        )
    existing = tokens.stored()
    if existing is not None:
        return existing
    token = tokens.make()
    # Straight to the terminal, not through logging: log files must never hold the token.
    sys.stderr.write(
        "\nmanaged-sessions: generated an HTTP bearer token (kept in the OS keyring; shown this once):\n"
        f"    {token}\n"
        "Clients send it as 'Authorization: Bearer <token>'. 'managed-sessions token show' prints it again.\n\n"
    )
    sys.stderr.flush()
    return token


class BearerAuth:
    """ASGI middleware: a request without the right token gets a 401 that says which header to send, and
    nothing else (not which part was wrong).

    The token comes as `Authorization: Bearer <token>` (MCP clients, `anthropic` SDK 2.10+) or as
    `x-api-key: <token>` (older `anthropic` SDKs). Under `/v1` the 401 is the Managed Agents API's error body,
    so the SDK raises `AuthenticationError`. `public_paths` (exact paths) need no token."""

    def __init__(self, app: ASGIApp, token: str, public_paths: frozenset[str] = frozenset()) -> None:
        self._app = app
        self._bearer = f"Bearer {token}".encode()
        self._key = token.encode()
        self._public = public_paths

    def _admits(self, headers: dict[bytes, bytes]) -> bool:
        bearer = hmac.compare_digest(headers.get(b"authorization", b""), self._bearer)
        key = hmac.compare_digest(headers.get(b"x-api-key", b""), self._key)
        return bearer or key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)  # lifespan events carry no headers
            return
        if self._admits(dict(scope["headers"])) or scope.get("path") in self._public:
            await self._app(scope, receive, send)
            return
        if str(scope.get("path", "")).startswith("/v1/"):
            body = json.dumps(
                {"type": "error", "error": {"type": "authentication_error", "message": UNAUTHORIZED}}
            ).encode()
            content_type = b"application/json"
        else:
            body, content_type = UNAUTHORIZED.encode() + b"\n", b"text/plain; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"www-authenticate", b'Bearer realm="managed-sessions"'),
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


UNAUTHORIZED = (
    "missing or wrong token: send 'Authorization: Bearer <token>' (or 'x-api-key: <token>'); "
    "'managed-sessions token show' on the server's host prints it"
)


def transport_security(host: str, port: int, extra_hosts: tuple[str, ...]) -> TransportSecuritySettings:
    """Host/Origin allow-lists for DNS-rebinding protection."""
    hosts = ["127.0.0.1", "localhost", "[::1]", *extra_hosts]
    if host not in ("0.0.0.0", "::") and not is_loopback(host):  # noqa: S104 - comparing, not binding
        hosts.append(f"[{host}]" if ":" in host else host)
    allowed_hosts = [h for name in hosts for h in (name, f"{name}:*")]
    allowed_origins = [
        f"{scheme}://{name}{port_part}" for name in hosts for scheme in ("http", "https") for port_part in ("", ":*")
    ]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins
    )


class _Forward:
    """The ASGI app the lifespan builds, once the runtime is open (requests cannot arrive before that)."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("the HTTP app got a request before its lifespan started")
        await self.app(scope, receive, send)


def http_app(
    config: ServerConfig, token: str, host: str, port: int, *, opener: RuntimeOpener = open_runtime
) -> ASGIApp:
    """One ASGI app with one lifespan: it opens the runtime and serves, behind one token, the MCP front at `/mcp`,
    the Managed Agents REST API at `/v1` and the live view at `/ui`. `opener` is `open_runtime`, or (in tests) it
    with fake adapters."""
    mcp_app = _Forward()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with opener(config) as runtime:
            app.state.runtime = runtime
            mcp = build_server(runtime)
            security = transport_security(host, port, config.allowed_hosts)
            mcp_app.app = mcp.streamable_http_app(
                streamable_http_path="/mcp",
                transport_security=security,
                host=host,
                event_store=MemoryEventStore(),  # a dropped stream resumes with Last-Event-ID
                retry_interval=MCP_RETRY_MS,
            )
            settle_heap("start-up")
            async with mcp.session_manager.run():  # a mounted app's own lifespan never runs
                yield

    routes = [rest_mount(), *web_routes(), Mount("/", app=mcp_app)]
    return BearerAuth(Starlette(routes=routes, lifespan=lifespan), token, PUBLIC_PATHS)


def serve_http(config: ServerConfig, host: str, port: int) -> None:
    """Serves until interrupted."""
    token = resolve_token(config, host)
    app = http_app(config, token, host, port)
    logger.info("serving MCP at http://%s:%d/mcp, the REST API at /v1 and the live view at /ui", host, port)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, lifespan="on")
