"""What every MCP tool works with, opened once per server by the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import docker.errors

from server.blocking import in_thread
from server.config import ServerConfig
from server.definitions import Definitions
from server.hands.docker_sandbox import SandboxSettings
from server.hands.pool import SandboxPool
from server.hands.sandbox import SandboxUnavailableError
from server.hands.web_fetch import FetchPolicy
from server.session.manager import SessionManager
from server.session.store import Store

__all__ = ["Runtime", "open_runtime"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    config: ServerConfig
    store: Store
    definitions: Definitions
    sessions: SessionManager
    sandboxes: SandboxPool


@asynccontextmanager
async def open_runtime(config: ServerConfig) -> AsyncIterator[Runtime]:
    """Opens the store (running migrations), builds the services on it, and reaps stray sandboxes."""
    store = await in_thread(Store.open, config.database_path)
    try:
        async with anyio.create_task_group() as task_group:
            settings = SandboxSettings(store_id=store.store_id, extra_ca_bundle=config.extra_ca_bundle)
            fetch_policy = FetchPolicy(allow_private=config.web_fetch_allow_private)
            sandboxes = SandboxPool(settings, config.image, fetch_policy, task_group)
            sessions = SessionManager(
                store,
                config.data_dir,
                default_model=config.model,
                default_image=config.image,
                sandboxes=sandboxes,
                extra_ca_bundle=config.extra_ca_bundle is not None,
            )
            task_group.start_soon(_reap_at_start, store, sandboxes)
            yield Runtime(config, store, Definitions(store, default_model=config.model), sessions, sandboxes)
            task_group.cancel_scope.cancel()  # channel readers end with the server
    finally:
        await in_thread(store.close)


async def _reap_at_start(store: Store, sandboxes: SandboxPool) -> None:
    """Removes containers and volumes of sessions that no longer exist (never blocks start-up)."""
    try:
        await sandboxes.reap(await in_thread(store.session_ids))
    except (SandboxUnavailableError, docker.errors.DockerException) as exc:
        logger.info("skipped reaping sandboxes: Docker is not reachable (%s)", exc)
