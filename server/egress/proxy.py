"""The egress proxy: the only way out of a `limited` sandbox, allowing what its environment's allow-list names.

Trust model: the sandbox's code is untrusted and tries everything. It reaches this proxy (its network has no
other route) and asks for a host by name or address. The proxy attributes the connection to a principal (a
session, by the source address the backend registered for its container; or an image build, by a token in
`Proxy-Authorization`), checks the host and port against that principal's `HostRules`, resolves the name itself,
refuses it if any address is loopback, private, link-local or cloud metadata (unless `allow_private`), and
connects to an address it checked, never re-resolving. CONNECT tunnels carry TLS end to end, uninspected; plain
HTTP needs an absolute http:// URI and is one request per connection, so every request is checked.

It runs on its own thread and event loop, so a 100 MB relay never delays the server's loop, and each connection
is its own task under its own deadlines: a stuck upstream holds only its own connection, and not for long once
its client has gone (`half_closed_timeout_s`, see `relay.py`). Its sockets are its own (`sockets.py`, not
asyncio's transports), so a relay moves a tunnel's bytes in the kernel (`relay.py`). Refusals are answered with a
403 whose body says what to change; the most recent are kept per principal for `get_session`.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Sequence

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketStream
from anyio.from_thread import BlockingPortal
from anyio.streams.buffered import BufferedByteReceiveStream

from server.egress.addresses import non_public_kind
from server.egress.proxy_messages import BadMessage, ProxyRequest, answer, forwarded_response_head, parse_request
from server.egress.proxy_state import EgressPolicy, Principals, Refusal
from server.egress.relay import CHUNK_BYTES, Relay
from server.egress.sockets import accept, connect_tcp, listening_socket
from server.egress.web_fetch import Resolver, resolve_host

__all__ = ["EgressPolicy", "EgressProxy", "Refusal", "Resolver"]

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
"""A request or response head: browsers and servers cap theirs at 8 to 64 KiB."""

HEAD_TIMEOUT_S = 10.0
"""From accepting a connection to its whole request head: a client that has not spoken by then never will."""

ACCEPT_RETRY_S = 0.1
"""After a failed accept (no file descriptor left): soon, but not in a busy loop."""

DRAIN_S = 2.0
"""After answering a request itself, how long the proxy reads what else the client sent, before closing: closing
with unread bytes resets the connection, which can destroy the answer before the client reads it."""

BULK_THREADS = 32
"""Bulk transfers that may each have a worker thread at once (`relay.py`); more go on on the event loop."""

ALLOW_PRIVATE_HINT = "set MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE=1 on the server to allow private addresses (mirrors)"


class _Refused(Exception):
    """A request the proxy answers itself: `status`, RFC 9209 `error` and the body saying why and what to do."""

    def __init__(self, status: int, error: str, message: str, *, record: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.record = record


class EgressProxy:
    """An allow-listing HTTP proxy (see the module docstring). Thread-safe; `close()` ends it."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        resolver: Resolver | None = None,
        connect_timeout_s: float = 10.0,
        idle_timeout_s: float = 300.0,
        half_closed_timeout_s: float = 30.0,
        max_connections_per_principal: int = 64,
        max_refusals_kept: int = 20,
    ) -> None:
        self._allow_private = allow_private
        self._resolve = resolver or resolve_host
        self._connect_timeout_s = connect_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._half_closed_timeout_s = half_closed_timeout_s
        self._principals = Principals(max_connections=max_connections_per_principal, max_refusals=max_refusals_kept)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._portal: BlockingPortal | None = None
        self._listeners: anyio.abc.TaskGroup | None = None
        self._bulk_threads: anyio.CapacityLimiter | None = None

    def start(self) -> None:
        """Starts the proxy's thread and event loop, once."""
        with self._lock:
            if self._thread is not None:
                return
            ready = threading.Event()
            self._thread = threading.Thread(target=anyio.run, args=(self._run, ready), name="egress-proxy", daemon=True)
            self._thread.start()
        ready.wait()

    def listen(self, host: str, port: int = 0) -> int:
        """Listens on `host` (e.g. a sandbox network's gateway address) and returns the port (chosen if 0)."""
        self.start()
        assert self._portal is not None
        return self._portal.call(self._listen, host, port)

    def close(self) -> None:
        """Stops listening, ends every relay and joins the thread."""
        with self._lock:
            thread, portal, self._thread = self._thread, self._portal, None
        if thread is None or portal is None:
            return
        portal.call(portal.stop, True)
        thread.join()

    def set_policy(self, principal: str, policy: EgressPolicy) -> None:
        self._principals.set_policy(principal, policy)

    def drop_policy(self, principal: str) -> None:
        """Forgets `principal`'s policy and refusals; its open connections run until they end."""
        self._principals.drop_policy(principal)

    def admit(self, source_ip: str, principal: str) -> None:
        """Connections from `source_ip` (a sandbox container's address) are `principal`'s from now on."""
        self._principals.admit(source_ip, principal)

    def forget(self, source_ip: str, principal: str | None = None) -> None:
        """Connections from `source_ip` belong to no one any more (only if still `principal`'s, when given)."""
        self._principals.forget(source_ip, principal)

    def issue_token(self, principal: str) -> str:
        """A secret for `Proxy-Authorization: Basic base64("build:" + token)`, for clients whose address is unknown."""
        return self._principals.issue_token(principal)

    def revoke_token(self, token: str) -> None:
        self._principals.revoke_token(token)

    def refusals(self, principal: str) -> list[Refusal]:
        """The most recently refused (host, port) of `principal`, most recent first."""
        return self._principals.refusals(principal)

    def open_connections(self, principal: str) -> int:
        return self._principals.open_connections(principal)

    async def _run(self, ready: threading.Event) -> None:
        self._bulk_threads = anyio.CapacityLimiter(BULK_THREADS)  # made on the proxy's own loop
        async with BlockingPortal() as portal, anyio.create_task_group() as listeners:
            self._portal, self._listeners = portal, listeners
            ready.set()
            await portal.sleep_until_stopped()
            listeners.cancel_scope.cancel()

    async def _listen(self, host: str, port: int) -> int:
        listener = listening_socket(host, port)
        assert self._listeners is not None
        self._listeners.start_soon(self._accept, listener)
        return int(listener.getsockname()[1])

    async def _accept(self, listener: socket.socket) -> None:
        """Accepts connections, each served by its own task, until the proxy closes."""
        with listener:
            async with anyio.create_task_group() as connections:
                while True:
                    try:
                        accepted = await accept(listener)
                    except OSError as exc:  # out of file descriptors, say: the connections already open go on
                        logger.warning("egress proxy: cannot accept a connection: %s", exc)
                        await anyio.sleep(ACCEPT_RETRY_S)
                        continue
                    for client in accepted:
                        connections.start_soon(self._connection, client)

    async def _connection(self, client: SocketStream) -> None:
        """One client connection, start to end; whatever happens, both sockets are closed and the listener lives."""
        async with client:
            try:
                await self._serve(client)
            except Exception:  # one connection's bug must not end the listener (and every sandbox's)
                logger.exception("egress proxy: a connection failed unexpectedly")

    async def _serve(self, client: SocketStream) -> None:
        source = str(client.extra(SocketAttribute.remote_address)[0])  # noqa: S610 - anyio, not Django
        reader = BufferedByteReceiveStream(client)
        try:
            request = await _read_request(reader)
        except _Refused as refused:
            logger.debug("egress deny from %s: %s", source, refused)
            await _answer(client, refused)
            return
        if request is None:
            return
        principal = self._principals.principal(source, request.token())
        if principal is None:
            message = f"this connection (from {source}) is not from a sandbox of this server"
            logger.debug("egress deny %s from %s: unknown source", request.shown, source)
            await _answer(client, _Refused(403, "http_request_denied", message))
            return
        await self._serve_principal(principal, request, client, reader)

    async def _serve_principal(
        self, principal: str, request: ProxyRequest, client: SocketStream, reader: BufferedByteReceiveStream
    ) -> None:
        if not self._principals.claim(principal):
            await self._refuse(principal, request, client, self._over_cap(principal))
            return
        try:
            upstream = await self._open_upstream(principal, request)
        except _Refused as refused:
            await self._refuse(principal, request, client, refused)
        else:
            logger.debug("egress allow %s %s", principal, request.shown)
            async with upstream:
                await self._relay(request, client, reader, upstream)
        finally:
            self._principals.release(principal)

    async def _open_upstream(self, principal: str, request: ProxyRequest) -> SocketStream:
        """A connection to a checked address of the request's host, or `_Refused` saying why not."""
        policy = self._principals.policy(principal)
        if policy is None:
            raise _Refused(403, "http_request_denied", f"{principal} has no egress policy", record=True)
        if not policy.rules.allows(request.host, request.port):
            raise _Refused(403, "http_request_denied", _not_listed(request, policy), record=True)
        try:
            with anyio.fail_after(self._connect_timeout_s):
                addresses = await self._checked_addresses(request)
                return await _connect(request, addresses)
        except TimeoutError:
            message = f"{request.authority} did not answer within {self._connect_timeout_s:g} s"
            raise _Refused(504, "connection_timeout", message) from None

    async def _checked_addresses(self, request: ProxyRequest) -> Sequence[str]:
        try:
            addresses = [str(ipaddress.ip_address(request.host))]
        except ValueError:
            try:
                addresses = list(await self._resolve(request.host, request.port))
            except OSError as exc:
                raise _Refused(502, "dns_error", f"{request.host!r} could not be resolved: {exc}") from None
        if not addresses:
            raise _Refused(502, "dns_error", f"{request.host!r} resolves to no address")
        for address in addresses if not self._allow_private else ():
            kind = non_public_kind(ipaddress.ip_address(address))
            if kind is not None:
                shown = address if address == request.host else f"{request.host} resolves to {address},"
                message = f"{shown} a {kind} address: {ALLOW_PRIVATE_HINT}"
                raise _Refused(403, "destination_ip_prohibited", message, record=True)
        return addresses

    async def _refuse(self, principal: str, request: ProxyRequest, client: SocketStream, refused: _Refused) -> None:
        logger.debug("egress deny %s %s: %s", principal, request.shown, refused)
        if refused.record:
            self._principals.refuse(principal, request.host, request.port, str(refused))
        await _answer(client, refused)

    def _over_cap(self, principal: str) -> _Refused:
        cap = self._principals.max_connections
        message = f"{principal} already has {cap} connections open through the proxy, the most allowed; retry later"
        return _Refused(429, "connection_limit_reached", message, record=True)

    async def _relay(
        self, request: ProxyRequest, client: SocketStream, reader: BufferedByteReceiveStream, upstream: SocketStream
    ) -> None:
        relay = Relay(self._idle_timeout_s, self._half_closed_timeout_s, threads=self._bulk_threads)
        if request.is_connect:
            await client.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await relay.both_ways(reader, client, upstream)
            return
        await upstream.send(request.forwarded_head())
        answered = await _relay_http(relay, reader, client, upstream)
        if not answered and relay.timed_out:
            message = f"{request.authority} sent no response within {self._idle_timeout_s:g} s"
            await _answer(client, _Refused(504, "http_response_timeout", message))
        elif not answered:
            await _answer(client, _Refused(502, "http_response_incomplete", f"{request.authority} sent no response"))


async def _read_request(reader: BufferedByteReceiveStream) -> ProxyRequest | None:
    """The request head, parsed; None if the client left first; `_Refused` (400, 408) if it is not one."""
    try:
        with anyio.fail_after(HEAD_TIMEOUT_S):
            head = await reader.receive_until(b"\r\n\r\n", MAX_HEAD_BYTES)
        return parse_request(head)
    except (anyio.IncompleteRead, anyio.BrokenResourceError, OSError):
        return None
    except TimeoutError:
        raise _Refused(408, "http_request_error", f"no complete request within {HEAD_TIMEOUT_S:g} s") from None
    except anyio.DelimiterNotFound:
        raise _Refused(400, "http_request_error", f"the request head is over {MAX_HEAD_BYTES:,} bytes") from None
    except BadMessage as exc:
        raise _Refused(400, "http_request_error", f"malformed request: {exc}") from None


async def _connect(request: ProxyRequest, addresses: Sequence[str]) -> SocketStream:
    """A connection to the first of `addresses` that accepts one."""
    failures = []
    for address in addresses:
        try:
            return await connect_tcp(address, request.port)
        except OSError as exc:
            failures.append(f"{address}: {exc.strerror or exc}")
    raise _Refused(502, "connection_refused", f"could not connect to {request.authority} ({'; '.join(failures)})")


async def _relay_http(
    relay: Relay, reader: BufferedByteReceiveStream, client: SocketStream, upstream: SocketStream
) -> bool:
    """Relays one plain-HTTP exchange whose request head was sent; whether the client got a response head."""
    answered = False
    response = BufferedByteReceiveStream(upstream)

    status = 100
    with relay.scope:
        async with anyio.create_task_group() as group:
            group.start_soon(relay.pump, reader, upstream)
            try:
                while 100 <= status < 200:
                    status, head = forwarded_response_head(await response.receive_until(b"\r\n\r\n", MAX_HEAD_BYTES))
                    relay.touch()
                    answered = True
                    await client.send(head)
                await relay.pump(response, client)
            except (BadMessage, anyio.IncompleteRead, anyio.DelimiterNotFound, anyio.BrokenResourceError, OSError):
                relay.broken = True
            group.cancel_scope.cancel()  # the response is over: so is the request side
    return answered


async def _answer(client: ByteStream, refused: _Refused) -> None:
    """Sends the proxy's own response and closes the sending side, so it arrives whatever the client sent."""
    try:
        await client.send(answer(refused.status, str(refused), error=refused.error))
        await client.send_eof()
        with anyio.move_on_after(DRAIN_S):
            while await client.receive(CHUNK_BYTES):
                pass
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass


def _not_listed(request: ProxyRequest, policy: EgressPolicy) -> str:
    host = f"[{request.host}]" if ":" in request.host else request.host
    entry = host if request.port in (80, 443) else f"{host}:{request.port}"
    setting = policy.why or "networking.allowed_hosts of the environment"
    return (
        f"{request.authority} is not allowed by {setting}: add {entry!r} to networking.allowed_hosts of the "
        "environment (update_environment) to allow it"
    )
