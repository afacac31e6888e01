"""A client process for `bench_sse_latency.py`: follows one session's new events and prints, per event, its id
and the moment it was received (`time.monotonic_ns()`: CLOCK_MONOTONIC, the same clock in every process).

    _stream_reader.py sse  <base_url> <token> <session_id> <count>   # anthropic SDK: events.stream
    _stream_reader.py poll <base_url> <token> <session_id> <count>   # MCP over HTTP: get_events long polls

Prints `ready` once it is following (the stream's headers came; the first poll is out), then `<id> <ns>` lines.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import anthropic
import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def follow_stream(base_url: str, token: str, session_id: str, count: int) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key=token, max_retries=0)
    with client.beta.sessions.events.stream(session_id) as stream:
        say("ready")
        for received, event in enumerate(stream, start=1):
            say(f"{event.id} {time.monotonic_ns()}")
            if received == count:
                return


async def follow_polls(base_url: str, token: str, session_id: str, count: int) -> None:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(f"{base_url}/mcp", http_client=http)) as client,
    ):
        await client.list_tools()  # connected
        say("ready")
        cursor: str | None = None  # the session is new: its first event is the first to come
        received = 0
        while received < count:
            arguments: dict[str, Any] = {"session_id": session_id, "wait_seconds": 30, "limit": 100}
            if cursor is not None:
                arguments["after"] = cursor
            page = await call(client, arguments)
            now_ns = time.monotonic_ns()
            for event in page["events"]:
                say(f"{event['id']} {now_ns}")
            received += len(page["events"])
            cursor = page["next_cursor"]


async def call(client: Client, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool("get_events", arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def main() -> None:
    mode, base_url, token, session_id, count = sys.argv[1:6]
    if mode == "sse":
        follow_stream(base_url, token, session_id, int(count))
    else:
        anyio.run(follow_polls, base_url, token, session_id, int(count))


if __name__ == "__main__":
    main()
