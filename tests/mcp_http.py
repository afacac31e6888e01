"""An MCP client over Streamable HTTP to a `RestServer`'s `/mcp`: the same server, store and token as `/v1`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from rest_serving import RestServer


@asynccontextmanager
async def mcp_client(rest: RestServer) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {rest.token}"}, timeout=60) as http,
        Client(streamable_http_client(f"{rest.base_url}/mcp", http_client=http)) as client,
    ):
        yield client


async def call_tool(rest: RestServer, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The tool's structured result; a tool error fails the test with its text."""
    async with mcp_client(rest) as client:
        result = await client.call_tool(name, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)
