"""What every MCP tool works with, opened once per server by the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from server.brain.loop import RETRY_DELAYS_S, McpBearerLookup, SessionRunner
from server.brain.providers.anthropic import AnthropicModel
from server.core.blocking import in_thread, in_vault_thread
from server.core.config import ServerConfig
from server.core.errors import SandboxUnavailableError
from server.core.redaction import REDACTOR
from server.core.sessions import Session
from server.egress.web_fetch import FetchPolicy
from server.hands.docker.pool import SandboxPool
from server.hands.docker.sandbox import SandboxSettings
from server.hands.sandbox import SandboxBackend
from server.services.definitions import Definitions
from server.services.messages import Inbox
from server.services.resources import SessionRepositories
from server.services.sessions import SessionManager
from server.store.sqlite.store import Store
from vault.secret import Secret
from vault.vaults import Vaults

__all__ = ["Runtime", "open_runtime"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    config: ServerConfig
    store: Store
    definitions: Definitions
    sessions: SessionManager
    sandboxes: SandboxBackend
    runner: SessionRunner
    inbox: Inbox
    vaults: Vaults


@asynccontextmanager
async def open_runtime(config: ServerConfig) -> AsyncIterator[Runtime]:
    """Opens the store (running migrations), builds the services on it, and reaps stray sandboxes."""
    store = await in_thread(Store.open, config.database_path)
    vaults = Vaults(
        config.vault_index_path, allow_insecure_keyring=config.vault_allow_insecure_keyring, redactor=REDACTOR
    )
    try:
        async with anyio.create_task_group() as task_group:
            settings = SandboxSettings(store_id=store.store_id, extra_ca_bundle=config.extra_ca_bundle)
            fetch_policy = FetchPolicy(allow_private=config.web_fetch_allow_private)
            sandboxes = SandboxPool(settings, config.image, fetch_policy, task_group)
            repositories = SessionRepositories(config.data_dir, vaults, sandboxes, REDACTOR)
            sessions = SessionManager(
                store,
                config.data_dir,
                default_model=config.model,
                default_image=config.image,
                sandboxes=sandboxes,
                vaults=vaults,
                repositories=repositories,
            )
            model = AnthropicModel(api_key_present=config.model_key_present)
            runner = SessionRunner(
                store,
                sessions,
                sandboxes,
                model,
                task_group,
                retry_delays_s=config.model_retry_delays_s or RETRY_DELAYS_S,
                context_budget_tokens=config.context_budget_tokens,
                mcp_bearer_for=_bearer_lookup(vaults),
                engine_wait_s=config.engine_wait_s,
            )
            definitions = Definitions(store, default_model=config.model)
            inbox = Inbox(store, sessions, runner)
            runtime = Runtime(config, store, definitions, sessions, sandboxes, runner, inbox, vaults)
            task_group.start_soon(_reap_at_start, store, sandboxes)
            task_group.start_soon(_resume_running, store, runner)
            try:
                yield runtime
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await runner.aclose_mcp()  # remote MCP sessions are ended politely, when they answer
                task_group.cancel_scope.cancel()  # runs and channel readers end with the server
                with anyio.CancelScope(shield=True):
                    await model.aclose()
    finally:
        await in_thread(store.close)


async def _resume_running(store: Store, runner: SessionRunner) -> None:
    """Sessions that were running when the server stopped go on where their logs end.

    A session that cannot be resumed now (the store refuses writes, say) is left as it is: it goes on with
    its next message. Nothing here may end the server's task group."""
    try:
        running = await in_thread(store.running_session_ids)
    except Exception:
        logger.exception("could not list the sessions to resume; they go on with their next message")
        return
    for session_id in running:
        logger.info("session %s: resuming after a restart", session_id)
        try:
            await runner.resume(session_id)
        except Exception:
            logger.exception("session %s: could not resume it; it goes on with its next message", session_id)


async def _reap_at_start(store: Store, sandboxes: SandboxBackend) -> None:
    """Removes containers and volumes of sessions that no longer exist (never blocks start-up)."""
    try:
        await sandboxes.reap(await in_thread(store.session_ids))
    except SandboxUnavailableError as exc:
        logger.info("skipped reaping sandboxes: Docker is not reachable (%s)", exc)
    except Exception:  # a background task: it must not end the server's task group
        logger.exception("reaping stray sandboxes failed")


def _bearer_lookup(vaults: Vaults) -> McpBearerLookup:
    """A session's MCP server credential: the first of its vaults with a static_bearer for the URL."""

    async def bearer_for(session: Session, url: str) -> Secret | None:
        if not session.vault_ids:
            return None
        return await in_vault_thread(vaults.bearer_for, session.vault_ids, url)

    return bearer_for
