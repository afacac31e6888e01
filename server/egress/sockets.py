"""TCP sockets the egress proxy drives itself, so that a relay may hand their bytes to the kernel (`splice`).

asyncio's transports (behind anyio's socket streams) read ahead into a queue of their own and write from a buffer
of their own; bytes moved socket to socket in the kernel would overtake them. These streams own non-blocking
sockets outright: one `recv` or `send` per call when the socket is ready, `anyio.wait_readable`/`wait_writable`
when it is not, and nothing buffered in between, so the relay can take over the file descriptor at any point.
"""

from __future__ import annotations

import contextlib
import os
import socket

import anyio
import anyio.lowlevel
from anyio.abc import SocketStream

__all__ = ["SocketEnd", "accept", "connect_tcp", "listening_socket"]

BACKLOG = 4096
"""Connections the kernel queues before the proxy accepts them (capped by `net.core.somaxconn`)."""

ACCEPTS_PER_WAKE = 64
"""Connections taken off the queue per readiness, before letting the other tasks run."""


class SocketEnd(SocketStream):
    """A connected TCP socket as an anyio byte stream, with nothing buffered outside the kernel."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # heads and answers go out at once
        self._sock = sock
        self._closed = False

    @property
    def _raw_socket(self) -> socket.socket:
        return self._sock

    @property
    def raw(self) -> socket.socket:
        """The socket itself, for a relay that moves bytes in the kernel (nothing is buffered above it)."""
        return self._sock

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.lowlevel.checkpoint()
        while True:
            self._check_open()
            try:
                data = self._sock.recv(max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self._sock)
                continue
            except OSError as exc:
                raise anyio.BrokenResourceError from exc
            if not data:
                raise anyio.EndOfStream
            return data

    async def send(self, item: bytes) -> None:
        await anyio.lowlevel.checkpoint()
        view = memoryview(item)
        while view:
            self._check_open()
            try:
                sent = self._sock.send(view)
            except BlockingIOError:
                await anyio.wait_writable(self._sock)
                continue
            except OSError as exc:
                raise anyio.BrokenResourceError from exc
            view = view[sent:]

    async def send_eof(self) -> None:
        self._check_open()
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        """Closes the socket (a FIN after what was sent, as asyncio's transports do); idempotent."""
        if not self._closed:
            self._closed = True
            anyio.notify_closing(self._sock)  # a task still waiting on it gets ClosedResourceError, not a hang
            with contextlib.suppress(OSError):  # not connected any more, or already shut
                self._sock.shutdown(socket.SHUT_WR)
            self._sock.close()
        await anyio.lowlevel.checkpoint()

    def _check_open(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError


def listening_socket(host: str, port: int) -> socket.socket:
    """A non-blocking TCP listener on `host` (an address) and `port` (chosen if 0); raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=BACKLOG)
    listener.setblocking(False)
    return listener


async def accept(listener: socket.socket) -> list[SocketEnd]:
    """The connections waiting on `listener` (at least one, waiting for it); raises OSError (e.g. EMFILE)."""
    accepted: list[SocketEnd] = []
    while len(accepted) < ACCEPTS_PER_WAKE:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            if accepted:
                break
            await anyio.wait_readable(listener)
            continue
        except OSError:
            if accepted:
                break  # what was accepted is served; the error comes back on the next call
            raise
        accepted.append(SocketEnd(sock))
    return accepted


async def connect_tcp(address: str, port: int) -> SocketEnd:
    """A connection to `address` (an IP literal, already checked) and `port`; raises OSError."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        try:
            sock.connect((address, port))
        except BlockingIOError:
            await anyio.wait_writable(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error)) from None
    except BaseException:
        sock.close()
        raise
    return SocketEnd(sock)
