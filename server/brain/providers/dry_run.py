"""A dry run of one streamed Messages turn, answered by this process itself: how `warm` readies what the SDK
loads lazily.

The `anthropic` SDK loads parts of itself on a client's first request (its tracing's propagators, the
validator of stream events, header parsing), and its HTTP stack does the same on its first connection (the
connection pool, the socket backend, the HTTP/1.1 parser); together they cost the first real turn several
milliseconds. Here a throwaway client takes one turn through the same code as a real one, against a one-shot
listener on this process's own loopback address that answers a canned stream, so all of that is loaded by the
time a real turn comes. Nothing is sent to any endpoint. Where no loopback socket can be had, the turn is
answered in memory instead (the SDK's part is still warmed).
"""

from __future__ import annotations

import json

import anyio
import anyio.abc
import httpx2
from pydantic import JsonValue

__all__ = ["dry_run_anthropic"]

DRY_RUN_TIMEOUT_S = 10.0
_USAGE: dict[str, JsonValue] = {"input_tokens": 1, "output_tokens": 1}
_EVENTS: list[dict[str, JsonValue]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_dry_run",
            "type": "message",
            "role": "assistant",
            "model": "dry-run",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _USAGE,
        },
    },
    {"type": "ping"},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_dry_run", "name": "bash", "input": {}},
    },
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": _USAGE},
    {"type": "message_stop"},
]
_STREAM = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in _EVENTS)


def dry_run_anthropic() -> None:
    """One streamed turn through a throwaway client answered in memory (blocking: for a background thread, which
    gets an event loop of its own for it)."""
    anyio.run(_turn)


async def _turn() -> None:
    import anthropic

    from server.brain.providers.anthropic import AnthropicModel

    async def turn(http: httpx2.AsyncClient, base_url: str) -> None:
        client = anthropic.AsyncAnthropic(api_key="dry-run", base_url=base_url, http_client=http, max_retries=0)
        await AnthropicModel.with_client(client).turn(
            model="dry-run",
            system="dry run",
            messages=[{"role": "user", "content": [{"type": "text", "text": "dry run"}]}],
            tools=[{"name": "bash", "description": "dry run", "input_schema": {"type": "object"}}],
            max_tokens=1,
        )

    with anyio.fail_after(DRY_RUN_TIMEOUT_S):
        try:
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        except OSError:
            async with httpx2.AsyncClient(transport=httpx2.MockTransport(_answer)) as http:
                await turn(http, "http://dry-run.invalid")
            return
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, _answer_once)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
            async with httpx2.AsyncClient() as http:
                await turn(http, f"http://127.0.0.1:{port}")
            group.cancel_scope.cancel()


def _answer(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=_STREAM)


async def _answer_once(stream: anyio.abc.SocketStream) -> None:
    """Reads one request (its head, then `content-length` bytes of body) and answers the canned stream."""
    async with stream:
        received = b""
        while b"\r\n\r\n" not in received:
            received += await stream.receive()
        head, _, body = received.partition(b"\r\n\r\n")
        fields = (line.partition(b":") for line in head.split(b"\r\n"))
        length = int(next((value for name, _, value in fields if name.lower() == b"content-length"), b"0"))
        while len(body) < length:
            body += await stream.receive()
        answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n" % len(_STREAM)
        await stream.send(answer + _STREAM)
