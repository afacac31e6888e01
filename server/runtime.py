"""What every MCP tool works with, opened once per server by the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from server.config import ServerConfig
from server.definitions import Definitions
from server.session.blocking import in_thread
from server.session.manager import SessionManager
from server.session.store import Store

__all__ = ["Runtime", "open_runtime"]


@dataclass(frozen=True)
class Runtime:
    config: ServerConfig
    store: Store
    definitions: Definitions
    sessions: SessionManager


@asynccontextmanager
async def open_runtime(config: ServerConfig) -> AsyncIterator[Runtime]:
    """Opens the store (running migrations) and builds the services on it."""
    store = await in_thread(Store.open, config.database_path)
    try:
        yield Runtime(
            config=config,
            store=store,
            definitions=Definitions(store, default_model=config.model),
            sessions=SessionManager(store, config.data_dir, default_model=config.model, default_image=config.image),
        )
    finally:
        await in_thread(store.close)
