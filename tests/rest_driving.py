"""Driving sessions over REST with a scripted model: a server whose sessions really run (fake sandboxes, the
scripted Messages API), and waiting for a turn's end by polling `events.list` (the stream is another test's)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import anthropic
import pytest
from fake_sandboxes import FakeSandboxes
from model_server import ModelServer
from rest_serving import RestServer, rest_server

from server.core.config import ServerConfig
from vault.memory_store import MemoryStore

POLL_S = 0.02
WAIT_S = 15.0


@dataclasses.dataclass(frozen=True)
class Driven:
    server: RestServer
    model: ModelServer
    sandboxes: FakeSandboxes


@contextmanager
def driven_server(config: ServerConfig, monkeypatch: pytest.MonkeyPatch) -> Iterator[Driven]:
    """A REST server whose model is a `ModelServer` (reached through ANTHROPIC_BASE_URL); every request the
    model saw must have been one the real API accepts."""
    sandboxes = FakeSandboxes()
    with ModelServer() as model:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", model.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        keyed = dataclasses.replace(config, model_key_present=True)
        with rest_server(keyed, sandboxes=sandboxes, secrets=MemoryStore()) as server:
            yield Driven(server, model, sandboxes)
        assert model.violations == []


def newest_idle_seq(client: anthropic.Anthropic, session_id: str) -> int:
    """The seq of the session's newest `session.status_idle` (0: none yet)."""
    page = client.beta.sessions.events.list(session_id, order="desc", limit=1, types=["session.status_idle"])
    return int(page.data[0].to_dict()["seq"]) if page.data else 0


def wait_idle(client: anthropic.Anthropic, session_id: str, after_seq: int) -> dict[str, object]:
    """Polls until an idle newer than `after_seq` is logged and the session shows it; returns that idle event."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        page = client.beta.sessions.events.list(session_id, order="desc", limit=1, types=["session.status_idle"])
        newer = bool(page.data) and int(page.data[0].to_dict()["seq"]) > after_seq
        if newer and client.beta.sessions.retrieve(session_id).status == "idle":
            return page.data[0].to_dict()
        time.sleep(POLL_S)
    raise TimeoutError(f"session {session_id} did not go idle after seq {after_seq} within {WAIT_S} s")


def event_types(client: anthropic.Anthropic, session_id: str) -> list[str]:
    return [e.type for e in client.beta.sessions.events.list(session_id, limit=100)]


def make_environment(config: ServerConfig, name: str = "test-env") -> str:
    """An environment in the server's store, made through the service on a connection of its own (these tests
    are about sessions; `test_environments.py` drives the environments routes through the SDK)."""
    import anyio

    from server.services.definitions import Definitions, EnvironmentChanges
    from server.store.sqlite.store import Store

    def make() -> str:
        store = Store.open(config.database_path)
        try:
            definitions = Definitions(store, default_model=config.model)
            return anyio.run(definitions.create_environment, EnvironmentChanges(name=name)).id
        finally:
            store.close()

    with ThreadPoolExecutor(1) as pool:  # its own event loop: callable from async tests too
        return pool.submit(make).result()
