"""What every MCP tool works with, opened once per server by the lifespan."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc

from server.brain.loop import RETRY_DELAYS_S, SessionRunner
from server.brain.model import ModelClient
from server.brain.providers.anthropic import AnthropicModel
from server.brain.providers.openai_compat import OpenAICompatModel
from server.brain.providers.router import ModelRouter
from server.core.blocking import in_thread, in_vault_thread
from server.core.config import ServerConfig
from server.core.environments import EnvironmentSpec
from server.core.errors import SandboxUnavailableError
from server.core.redaction import REDACTOR
from server.core.sessions import Session
from server.egress.mcp_sessions import McpBearerLookup, RemoteMcpSessions
from server.egress.package_indexes import default_registries, package_index_hosts
from server.egress.web_fetch import FetchPolicy
from server.hands.docker.pool import SandboxPool
from server.hands.docker.sandbox import SandboxSettings, VolumeRecords
from server.hands.sandbox import SandboxBackend
from server.hands.toolset import BUILTIN_TOOL_SPECS
from server.services.definitions import Definitions
from server.services.file_resources import SessionFiles, SessionResourceDelivery
from server.services.files import FileService
from server.services.follow import LogFollower
from server.services.http_token import HttpToken
from server.services.lifecycle import SessionLifecycle
from server.services.messages import Inbox
from server.services.previews import PreviewHub
from server.services.resources import SessionRepositories
from server.services.sessions import SessionManager
from server.services.skill_delivery import UNLISTABLE, SessionSkills
from server.services.skills import SkillService
from server.services.start_up import StartUp
from server.services.vaults import VaultService
from server.store.disk_files import DiskFileStore
from server.store.ports import SessionStore, Storage
from server.store.sqlite.store import Store as SqliteStore
from vault.keyring_store import KEYRING_SERVICE, KeyringStore
from vault.secret import Secret
from vault.store import SecretStore
from vault.vaults import Vaults

__all__ = ["Runtime", "docker_sandboxes", "http_token", "keyring_secrets", "open_runtime", "warm_loop_executor"]

logger = logging.getLogger(__name__)

SHUTDOWN_STOP_S = 30.0
"""How long a clean shutdown waits for the engine to stop the containers no running session needs; an engine call
already under way still finishes (a thread cannot be cut short), and each stop allows its container 10 s. What is
left running is stopped by the next server's idle sweep."""

MAX_IDLE_CHECK_S = 60.0
"""The longest gap between idle sweeps: a container outlives its idle time by at most this (one engine listing per
sweep is cheap)."""


@dataclass(frozen=True)
class Runtime:
    """The services of one data dir, and the adapters they were wired with (for tests and benchmarks)."""

    config: ServerConfig
    store: Storage
    definitions: Definitions
    sessions: SessionManager
    sandboxes: SandboxBackend
    runner: SessionRunner
    inbox: Inbox
    vaults: Vaults
    remote_mcp: RemoteMcpSessions
    lifecycle: SessionLifecycle
    vault_service: VaultService
    follower: LogFollower
    files: FileService
    session_files: SessionFiles
    start_up: StartUp
    """A front door tells it when it answered a call: the reap, the warm pools and the model warm-up wait for it."""
    skills: SkillService
    session_skills: SessionSkills

    async def stop_unneeded_sandboxes(self) -> None:
        """Stops the sandboxes of sessions that are not running, within `SHUTDOWN_STOP_S` (see the function)."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_STOP_S):
            await _stop_unneeded_sandboxes(self.store, self.sandboxes)


@asynccontextmanager
async def open_runtime(
    config: ServerConfig,
    *,
    model: ModelClient | None = None,
    sandboxes: Callable[[anyio.abc.TaskGroup], SandboxBackend] | None = None,
    store: Storage | None = None,
    secrets: SecretStore | None = None,
) -> AsyncIterator[Runtime]:
    """The composition root: opens the store (running migrations), wires the services to their adapters, resumes
    the sessions that were running (their interrupted tools answered before anything else, see
    `_record_interruptions`) and reaps stray sandboxes.

    Each keyword replaces one production adapter, so tests pass fakes instead of patching: `model` (default:
    the provider each model id names: Anthropic, or an OpenAI-compatible endpoint), `sandboxes` (a factory
    given the runtime's task group; default: Docker), `store` (default: SQLite in the data dir; one passed in
    is not closed here), `secrets` (default: the OS keyring).

    The reap, the warm pools and the model warm-up begin once a front door answered its first call (see
    `start_up.py`), not while a client that just spawned the server waits for its first answer."""
    opened = store is None
    store = store if store is not None else await in_thread(SqliteStore.open, config.database_path)
    vaults = Vaults(
        config.vault_index_path,
        secrets if secrets is not None else keyring_secrets(),
        allow_insecure_keyring=config.vault_allow_insecure_keyring,
        redactor=REDACTOR,
    )
    router: ModelRouter | None = None  # made here, so closed here
    if model is None:
        anthropic = AnthropicModel(api_key_present=config.model_key_present)
        model = router = ModelRouter(config.providers, anthropic, OpenAICompatModel)
    try:
        async with anyio.create_task_group() as task_group:
            runtime = _wire(config, store, vaults, task_group, model, sandboxes)
            resumed = await _record_interruptions(store, runtime.runner)
            task_group.start_soon(_reap_then_keep_warm, store, runtime)
            if resumed:
                task_group.start_soon(_warm_then_go_on, router, config.model, runtime.runner, resumed)
            elif router is not None:
                task_group.start_soon(_warm_in_background, router, config.model, runtime.start_up)
            task_group.start_soon(_stop_idle_sandboxes, store, runtime.sandboxes, config.idle_stop_s)
            try:
                yield runtime
            finally:
                await runtime.stop_unneeded_sandboxes()
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await runtime.remote_mcp.aclose()  # remote MCP sessions are ended politely, when they answer
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await runtime.sandboxes.aclose()  # the egress proxy's thread; running sessions' sandboxes stay
                task_group.cancel_scope.cancel()  # runs and channel readers end with the server
                if router is not None:
                    with anyio.CancelScope(shield=True):
                        await router.aclose()
    finally:
        if opened:
            await in_thread(store.close)


def _wire(
    config: ServerConfig,
    store: Storage,
    vaults: Vaults,
    task_group: anyio.abc.TaskGroup,
    model: ModelClient,
    sandbox_factory: Callable[[anyio.abc.TaskGroup], SandboxBackend] | None,
) -> Runtime:
    """Builds every service on its adapters (the one place that knows which adapter serves which port)."""
    if sandbox_factory is None:
        sandboxes = docker_sandboxes(config, store.store_id, task_group, records=store)
    else:
        sandboxes = sandbox_factory(task_group)
    repositories = SessionRepositories(config.data_dir, vaults, sandboxes, REDACTOR)
    file_store = DiskFileStore(config.data_dir / "files")
    session_files = SessionFiles(file_store, store, config.data_dir, sandboxes)
    skill_store = skill_store_dir(config)
    skills = SkillService(store, skill_store)
    session_skills = SessionSkills(store, skill_store, sandboxes)
    sessions = SessionManager(
        store,
        config.data_dir,
        default_model=config.model,
        default_image=config.image,
        sandboxes=sandboxes,
        vaults=vaults,
        repositories=repositories,
        files=session_files,
        providers=config.providers,
        skills=skills,
    )
    files = FileService(file_store, sessions, config.max_upload_bytes)
    remote_mcp = RemoteMcpSessions(task_group, _bearer_lookup(vaults))
    previews = PreviewHub()
    runner = SessionRunner(
        sessions,
        sandboxes,
        model,
        task_group,
        builtin_tools=BUILTIN_TOOL_SPECS,
        remote_mcp=remote_mcp,
        resources=SessionResourceDelivery(repositories, session_files, session_skills),
        files=files,
        retry_delays_s=config.model_retry_delays_s or RETRY_DELAYS_S,
        model_limits=lambda model_id: config.providers.limits(model_id, config.context_budget_tokens),
        engine_wait_s=config.engine_wait_s,
        previews=previews,
        skills=session_skills,
    )
    definitions = Definitions(
        store,
        default_model=config.model,
        providers=config.providers,
        warm=sandboxes,
        default_image=config.image,
        skills=skills,
    )
    inbox = Inbox(store, sessions, runner, check_files=files.check_sources, skills=session_skills)
    lifecycle = SessionLifecycle(sessions, inbox, remote_mcp)
    vault_service = VaultService(vaults)
    follower = LogFollower(store, sessions.notifier, previews)
    return Runtime(
        config,
        store,
        definitions,
        sessions,
        sandboxes,
        runner,
        inbox,
        vaults,
        remote_mcp,
        lifecycle,
        vault_service,
        follower,
        files,
        session_files,
        StartUp(),
        skills,
        session_skills,
    )


async def _record_interruptions(store: SessionStore, runner: SessionRunner) -> list[str]:
    """Answers the tools that the sessions running when the server stopped had in flight, and returns those
    sessions, whose runs are to go on where their logs end.

    Done at open, before the first request is served and before any Docker call (the reap, the warm pools), all
    sessions at once: their reads share the store's threads and their appends share commits, so every interrupted
    session says so in its log about as soon as the store is open, and no record waits on the engine or on
    another session. A session that cannot be resumed now (the store refuses writes, say) is left as it is: it
    goes on with its next message. Nothing here may fail start-up."""
    try:
        running = await in_thread(store.running_session_ids)
    except Exception:
        logger.exception("could not list the sessions to resume; they go on with their next message")
        return []
    failed: set[str] = set()

    async def record(session_id: str) -> None:
        logger.info("session %s: resuming after a restart", session_id)
        try:
            await runner.resume(session_id, start=False)
        except Exception:
            logger.exception("session %s: could not resume it; it goes on with its next message", session_id)
            failed.add(session_id)

    async with anyio.create_task_group() as group:
        for session_id in running:
            group.start_soon(record, session_id)
    return [session_id for session_id in running if session_id not in failed]


async def _stop_idle_sandboxes(store: SessionStore, sandboxes: SandboxBackend, idle_s: float) -> None:
    """Stops, every so often, the sandboxes of sessions that are not running and were not used for `idle_s`
    seconds. Lives here, not in the backend, because only the store knows which sessions are running (a run
    waiting on a slow model keeps its shell). Nothing here may end the server's task group."""
    if not 0 < idle_s < float("inf"):  # `ServerConfig.problems` refuses it at start; a config made in code may not
        logger.warning("idle sandboxes are never stopped: idle_stop_s=%r is not a positive number", idle_s)
        return
    period = min(max(idle_s / 2, 0.05), MAX_IDLE_CHECK_S)
    while True:
        await anyio.sleep(period)
        try:
            await sandboxes.stop_idle(idle_s, functools.partial(in_thread, store.running_session_ids))
        except Exception:
            logger.exception("the idle sandbox sweep failed; the next one tries again")


async def _stop_unneeded_sandboxes(store: SessionStore, sandboxes: SandboxBackend) -> None:
    """At a clean shutdown, stops the sandboxes of sessions that are not running (their files stay): nothing keeps
    running that no session needs. Running sessions' sandboxes go on, so the next server resumes them."""
    try:
        stopped = await sandboxes.stop_idle(0, functools.partial(in_thread, store.running_session_ids))
    except Exception:
        logger.exception("could not stop the sandboxes of sessions that are not running")
        return
    if stopped:
        logger.info("stopped %d sandbox(es) no running session needs", len(stopped))


async def _reap_at_start(store: SessionStore, sandboxes: SandboxBackend) -> None:
    """Removes containers and volumes of sessions that no longer exist (never blocks start-up)."""
    try:
        await sandboxes.reap(await in_thread(store.session_ids))
    except SandboxUnavailableError as exc:
        logger.info("skipped reaping sandboxes: Docker is not reachable (%s)", exc)
    except Exception:  # a background task: it must not end the server's task group
        logger.exception("reaping stray sandboxes failed")


async def _warm_in_background(router: ModelRouter, default_model: str, start_up: StartUp) -> None:
    """Imports the model SDKs and makes their clients in a daemon thread once start-up is over (the first answer,
    or a fallback), so the first turn does not wait a second or more for them, and neither does the first answer
    (nor a server that stops at once: nothing joins the thread)."""
    await start_up.over()
    await warm_loop_executor()
    threading.Thread(target=_warm, args=(router, default_model), name="model-warm", daemon=True).start()


async def _warm_then_go_on(
    router: ModelRouter | None, default_model: str, runner: SessionRunner, resumed: list[str]
) -> None:
    """Starts the runs of the resumed sessions once the model SDKs are imported, in a worker thread started at
    once: their first step is a model turn, which would otherwise import the SDK on the event loop and stall the
    handshake and first requests of the client that started the server for a second or more (a thread only
    shares the interpreter with them). A server that stops meanwhile does not wait for the thread."""
    if router is not None:
        await warm_loop_executor()
        await anyio.to_thread.run_sync(_warm, router, default_model, abandon_on_cancel=True)
    for session_id in resumed:
        runner.start(session_id)


async def warm_loop_executor() -> None:
    """Starts the thread of the event loop's own default executor, which anyio's `getaddrinfo` (every new connection
    to a host name) and the model SDKs' first request (both resolve their platform headers in `asyncio.to_thread`)
    run in. Left to the first turn, starting it cost that turn about a millisecond; the pool then keeps it for the
    life of the loop. The dry run cannot start it: it runs on a loop of its own. Resolving a numeric address is
    what starts it here (the resolver runs in that executor too; a numeric address is never looked up). Only an
    optimisation: a resolver that fails is logged, and nothing else happens."""
    try:
        await anyio.getaddrinfo("127.0.0.1", None)
    except OSError as exc:
        logger.debug("could not start the event loop's executor thread ahead of the first turn: %s", exc)


def _warm(router: ModelRouter, default_model: str) -> None:
    started = time.perf_counter()
    try:
        router.warm(default_model)
    except Exception:  # only an optimisation: the first turn then makes what it needs itself
        logger.exception("warming the model clients failed; the first turn makes them")
        return
    logger.info("model clients ready (warmed in %.2f s)", time.perf_counter() - started)


DEFAULT_POOL_OWNER = "default"
"""Who asks for the default environment's warm pool (`MANAGED_SESSIONS_WARM_POOL`); environments ask by their id."""


async def _reap_then_keep_warm(store: SessionStore, runtime: Runtime) -> None:
    """Reaps, then fills the warm pools (the default environment's, and those environments ask for): once start-up
    is over (off the path of the handshake and the first answer), once stray pool containers of an earlier server
    are gone. Nothing here may end the server's task group or fail start-up."""
    await runtime.start_up.over()
    await _reap_at_start(store, runtime.sandboxes)
    default = EnvironmentSpec(image=runtime.config.image)  # what a session created without an environment gets
    try:
        runtime.sandboxes.keep_warm(DEFAULT_POOL_OWNER, default, runtime.config.warm_pool)
        await runtime.definitions.keep_pools_warm()
    except Exception:
        logger.exception("the warm pools could not be started; new sessions start their own containers")


def _bearer_lookup(vaults: Vaults) -> McpBearerLookup:
    """A session's MCP server credential: the first of its vaults with a static_bearer for the URL."""

    async def bearer_for(session: Session, url: str) -> Secret | None:
        if not session.vault_ids:
            return None
        return await in_vault_thread(vaults.bearer_for, session.vault_ids, url)

    return bearer_for


def docker_sandboxes(
    config: ServerConfig, store_id: str, task_group: anyio.abc.TaskGroup, *, records: VolumeRecords | None = None
) -> SandboxBackend:
    """The production sandbox backend: a Docker container per session, labelled with `store_id`; `records` is the
    store's record of which pooled volume sets sessions own (see `warm_pool.py`)."""
    settings = SandboxSettings(
        store_id=store_id,
        skill_store=skill_store_dir(config),
        extra_ca_bundle=config.extra_ca_bundle,
        package_hosts=lambda: package_index_hosts(os.environ, Path.home(), defaults=default_registries(os.environ)),
        egress_allow_private=config.egress_allow_private,
    )
    fetch_policy = FetchPolicy(allow_private=config.web_fetch_allow_private)
    return SandboxPool(settings, config.image, fetch_policy, task_group, records=records)


def skill_store_dir(config: ServerConfig) -> Path:
    """Where skill versions are written for sandboxes to read (made here: the engine would make a missing one as
    root, and the server could not write it)."""
    folder = config.data_dir / "skills" / "versions"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(UNLISTABLE)
    except OSError as exc:  # an unwritable data dir: doctor says so; a session's skills then fail with the cause
        logger.warning("could not make the skill store %s: %s", folder, exc)
    return folder


def keyring_secrets() -> SecretStore:
    """The production secret store: the OS keyring, under the service name the vault uses."""
    return KeyringStore(KEYRING_SERVICE)


def http_token(config: ServerConfig) -> HttpToken:
    """The HTTP bearer token service over the production secret store."""
    return HttpToken(config, keyring_secrets())
