"""The channel into a sandbox: one long-lived `docker exec -i` of the helper, spoken to in JSON lines.

A tool call costs a line written and a line read on an open connection, not a
`docker exec` (about 65 ms) each. The exec's hijacked connection is wrapped as
a native anyio socket stream, so requests need no worker threads and a
cancelled call just stops waiting. Docker multiplexes the exec's stdout and
stderr on that connection in frames (an 8-byte header: stream id, three zero
bytes, big-endian length); stdout carries the protocol (see PROTOCOL.md),
stderr the helper's diagnostics, which go to the log.

Requests carry ids and may overlap; a single reader task routes each response
to its waiter. When the connection ends (the container died, the helper
exited), every waiter fails with `ChannelClosedError` and the sandbox opens a
new channel, on a new container if need be.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from pydantic import JsonValue

from server.hands.docker.engine import in_engine

__all__ = ["ChannelClosedError", "HelperChannel", "HelperError"]

logger = logging.getLogger(__name__)

_FRAME_HEADER = struct.Struct(">BxxxL")
_STDOUT, _STDERR = 1, 2
MAX_LINE_BYTES = 64 * 1024 * 1024
"""A response carries at most a 20 MB PDF as base64 (about 27 MB); anything longer is a broken helper."""


class ChannelClosedError(Exception):
    """The helper's connection ended; the request's outcome is unknown."""


class HelperError(Exception):
    """The helper answered `ok: false`; the message is meant for the model."""


@dataclass
class _Waiter:
    done: anyio.Event = field(default_factory=anyio.Event)
    response: dict[str, Any] | None = None


class HelperChannel:
    """Requests and responses over one exec of the helper."""

    def __init__(self, stream: anyio.abc.SocketStream, exec_id: str) -> None:
        self._stream = stream
        self.exec_id = exec_id
        self._ids = itertools.count(1)
        self._waiting: dict[int, _Waiter] = {}
        self._send_lock = anyio.Lock()
        self.closed = anyio.Event()

    @classmethod
    async def open(cls, docker_api: Any, container_id: str, command: list[str], user: str) -> HelperChannel:
        """Starts the helper in the container and connects to its stdin and stdout."""

        def start() -> tuple[socket.socket, str]:
            exec_id = docker_api.exec_create(
                container_id, command, stdin=True, stdout=True, stderr=True, tty=False, user=user
            )["Id"]
            hijacked = docker_api.exec_start(exec_id, socket=True)
            if type(hijacked._sock) is not socket.socket:
                hijacked.close()
                raise ChannelClosedError("this Docker engine connection (TLS or SSH) cannot carry a sandbox channel")
            # The SDK's wrapper and its HTTP response keep each other alive and close the descriptor whenever
            # the garbage collector gets to them, under the event loop's feet: the channel owns a duplicate,
            # and the SDK's objects are closed now.
            raw = hijacked._sock.dup()
            hijacked._response.close()
            hijacked.close()
            return raw, exec_id

        raw, exec_id = await in_engine(start)  # a dead engine: EngineUnreachableError
        if raw.family == socket.AF_UNIX:
            stream: anyio.abc.SocketStream = await anyio.abc.UNIXSocketStream.from_socket(raw)
        else:
            stream = await anyio.abc.SocketStream.from_socket(raw)
        return cls(stream, exec_id)

    async def run_reader(self) -> None:
        """Routes responses to waiters until the connection ends; run it in a task group."""
        buffer = b""
        line = b""
        try:
            while True:
                while len(buffer) < _FRAME_HEADER.size:
                    buffer += await self._stream.receive()
                stream_id, length = _FRAME_HEADER.unpack_from(buffer)
                buffer = buffer[_FRAME_HEADER.size :]
                while len(buffer) < length:
                    buffer += await self._stream.receive()
                payload, buffer = buffer[:length], buffer[length:]
                if stream_id == _STDERR:
                    logger.debug("sandbox helper: %s", payload.decode(errors="replace").rstrip())
                    continue
                line += payload
                *complete, line = line.split(b"\n")
                for one in complete:
                    self._deliver(one)
                if len(line) > MAX_LINE_BYTES:
                    raise ChannelClosedError("the sandbox helper sent an oversized response")
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, ChannelClosedError, OSError):
            pass
        except Exception:  # one broken channel must not take the server's task group down
            logger.exception("sandbox channel %s failed", self.exec_id[:12])
        finally:
            await self._fail_waiters()

    def _deliver(self, raw_line: bytes) -> None:
        try:
            response = json.loads(raw_line)
            waiter = self._waiting.pop(response["id"])
        except (ValueError, KeyError, TypeError):
            logger.warning("sandbox helper sent an unexpected line: %.200r", raw_line)
            return
        waiter.response = response
        waiter.done.set()

    async def _fail_waiters(self) -> None:
        self.closed.set()
        for waiter in self._waiting.values():
            waiter.done.set()
        self._waiting.clear()
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()

    async def request(self, op: str, args: Mapping[str, JsonValue], timeout_s: float) -> dict[str, Any]:
        """Sends one request and waits for its response; `TimeoutError` after `timeout_s`."""
        if self.closed.is_set():
            raise ChannelClosedError("the sandbox channel is closed")
        request_id = next(self._ids)
        waiter = _Waiter()
        self._waiting[request_id] = waiter
        line = json.dumps({"id": request_id, "op": op, "args": args}, separators=(",", ":")).encode() + b"\n"
        try:
            async with self._send_lock:
                await self._stream.send(line)
            with anyio.fail_after(timeout_s):
                await waiter.done.wait()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise ChannelClosedError("the sandbox channel broke while sending") from exc
        finally:
            self._waiting.pop(request_id, None)
        if waiter.response is None:
            raise ChannelClosedError("the sandbox stopped before it answered")
        if not waiter.response.get("ok"):
            raise HelperError(str(waiter.response.get("error") or "the sandbox helper failed"))
        result: dict[str, Any] = waiter.response.get("result") or {}
        return result

    async def aclose(self) -> None:
        await self._stream.aclose()
