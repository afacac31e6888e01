"""The channel to the sandbox helper: JSON-lines requests and responses over any byte stream.

A tool call costs a line written and a line read on an open connection, not a
new process each. The stream carries the helper's stdout one way and its stdin
the other (see PROTOCOL.md); how it gets there is the backend's business (Docker:
an exec's hijacked connection, demultiplexed in `hands/docker/exec_stream.py`).

Requests carry ids and may overlap; a single reader task routes each response
to its waiter. When the stream ends (the sandbox died, the helper exited),
every waiter fails with `ChannelClosedError` and the backend opens a new
channel, on a new sandbox if need be.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from pydantic import JsonValue

__all__ = ["MAX_LINE_BYTES", "ChannelClosedError", "HelperChannel", "HelperError"]

logger = logging.getLogger(__name__)

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
    """Requests and responses over one connection to the helper; `name` is for the log."""

    def __init__(self, stream: anyio.abc.ByteStream, name: str) -> None:
        self._stream = stream
        self.name = name
        self._ids = itertools.count(1)
        self._waiting: dict[int, _Waiter] = {}
        self._send_lock = anyio.Lock()
        self.closed = anyio.Event()

    async def run_reader(self) -> None:
        """Routes responses to waiters until the stream ends; run it in a task group."""
        try:
            await self._read_lines()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, ChannelClosedError, OSError):
            pass
        except Exception:  # one broken channel must not take the server's task group down
            logger.exception("sandbox channel %s failed", self.name)
        finally:
            await self._fail_waiters()

    async def _read_lines(self) -> None:
        buffer = bytearray()
        while True:
            chunk = await self._stream.receive()
            start = 0
            scanned = len(buffer)  # what came before holds no newline: a large response is scanned once
            buffer += chunk
            end = buffer.find(b"\n", scanned)
            while end != -1:
                self._deliver(bytes(buffer[start:end]))
                start = end + 1
                end = buffer.find(b"\n", start)
            del buffer[:start]
            if len(buffer) > MAX_LINE_BYTES:
                raise ChannelClosedError("the sandbox helper sent an oversized response")

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
        """Sends one request and waits for its response; `TimeoutError` after `timeout_s`.

        Raises `HelperError` (the helper refused: tell the model) or `ChannelClosedError`."""
        if self.closed.is_set():
            raise ChannelClosedError("the sandbox channel is closed")
        request_id = next(self._ids)
        waiter = _Waiter()
        self._waiting[request_id] = waiter
        line = json.dumps({"id": request_id, "op": op, "args": args}, separators=(",", ":")).encode() + b"\n"
        try:
            await self._send(line)
            with anyio.fail_after(timeout_s):  # outside the OSError handler: TimeoutError is an OSError
                await waiter.done.wait()
        finally:
            self._waiting.pop(request_id, None)
        if waiter.response is None:
            raise ChannelClosedError("the sandbox stopped before it answered")
        if not waiter.response.get("ok"):
            raise HelperError(str(waiter.response.get("error") or "the sandbox helper failed"))
        result: dict[str, Any] = waiter.response.get("result") or {}
        return result

    async def _send(self, line: bytes) -> None:
        try:
            async with self._send_lock:
                await self._stream.send(line)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise ChannelClosedError("the sandbox channel broke while sending") from exc

    async def aclose(self) -> None:
        await self._stream.aclose()
