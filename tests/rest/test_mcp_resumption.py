"""`/mcp` over real HTTP: a client whose connection drops during a long `send_message` reconnects with
`Last-Event-ID` and gets the call's result (the server's event store replays it), instead of an error.

Legacy (2025-era, initialize handshake) mode: the wire Claude Code and most hosts speak, where a call's result
comes on an SSE stream; a modern (2026-07-28) call is a plain JSON response, with no stream to resume."""

from __future__ import annotations

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.streamable_http import EventMessage
from mcp.types import JSONRPCNotification
from model_server import ModelServer, hang, reply
from processes import MCP_HTTP_TIMEOUT
from rest_serving import RestServer
from scenario import call_ok
from tcp_proxy import TcpProxy

from server.fronts.mcp.event_store import MemoryEventStore

pytestmark = pytest.mark.anyio


async def test_a_send_message_whose_connection_drops_resumes_with_its_result(
    served: RestServer, model: ModelServer
) -> None:
    held = hang("Still ", then=reply("working."))
    model.enqueue(held)
    headers = {"Authorization": f"Bearer {served.token}"}
    with TcpProxy(served.port) as proxy:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=MCP_HTTP_TIMEOUT) as http,
            Client(
                streamable_http_client(f"http://127.0.0.1:{proxy.port}/mcp", http_client=http), mode="legacy"
            ) as client,
        ):
            session_id = (await call_ok(client, "create_session", {}))["id"]
            outcome: dict[str, object] = {}

            async def long_call() -> None:
                arguments = {"session_id": session_id, "text": "go", "wait_seconds": 30}
                outcome.update(await call_ok(client, "send_message", arguments))

            with anyio.fail_after(30):
                async with anyio.create_task_group() as calls:
                    calls.start_soon(long_call)
                    await anyio.to_thread.run_sync(held.wait_started)  # the call is in flight
                    connections = proxy.accepted
                    proxy.cut()  # its stream drops mid-call
                    held.release()
    assert proxy.accepted > connections  # the client came back ...
    assert outcome["status"] == "idle"  # ... and got the call's result
    assert outcome["reply"] == "working."  # the turn's last text block


async def test_the_event_store_replays_one_stream_and_forgets_the_oldest() -> None:
    store = MemoryEventStore(max_events=3)
    ping = JSONRPCNotification(jsonrpc="2.0", method="notifications/progress")
    first = await store.store_event("a", None)
    mark = await store.store_event("a", ping)
    await store.store_event("b", ping)
    later = await store.store_event("a", ping)
    replayed: list[EventMessage] = []

    async def collect(message: EventMessage) -> None:
        replayed.append(message)

    assert await store.replay_events_after(first, collect) is None  # dropped: the store holds 3
    assert await store.replay_events_after(mark, collect) == "a"
    assert [m.event_id for m in replayed] == [later]
