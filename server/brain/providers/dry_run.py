"""A dry run of one streamed Messages turn, answered in memory: how `warm` readies what the SDK loads lazily.

The `anthropic` SDK loads parts of itself on a client's first request (its tracing's propagators, the
validator of stream events, header parsing), which cost the first real turn several milliseconds. Here a
throwaway client, whose transport answers a canned stream without a socket, takes one turn through the same
code as a real one, so those parts are loaded by the time a real turn comes. Nothing is sent anywhere.
"""

from __future__ import annotations

import json

import anyio
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

    transport = httpx2.MockTransport(_answer)
    with anyio.fail_after(DRY_RUN_TIMEOUT_S):
        async with httpx2.AsyncClient(transport=transport) as http:
            client = anthropic.AsyncAnthropic(
                api_key="dry-run", base_url="http://dry-run.invalid", http_client=http, max_retries=0
            )
            await AnthropicModel.with_client(client).turn(
                model="dry-run",
                system="dry run",
                messages=[{"role": "user", "content": [{"type": "text", "text": "dry run"}]}],
                tools=[{"name": "bash", "description": "dry run", "input_schema": {"type": "object"}}],
                max_tokens=1,
            )


def _answer(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=_STREAM)
