"""Connecting an in-memory MCP client to a server over a freshly opened runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp import Client

from server.core.config import ServerConfig
from server.fronts.mcp.server import build_server
from server.services.runtime import open_runtime


@asynccontextmanager
async def connected(config: ServerConfig, **adapters: Any) -> AsyncIterator[Client]:
    """`open_runtime(config, **adapters)` (fakes for the model, sandboxes, store or secrets), served to a client."""
    async with open_runtime(config, **adapters) as runtime, Client(build_server(runtime)) as client:
        yield client
