"""A REST server per test over fake sandboxes and an in-memory secret store (no model endpoint)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_sandboxes import FakeSandboxes
from rest_serving import RestServer, rest_server

from server.core.config import ServerConfig
from vault.memory_store import MemoryStore


@pytest.fixture
def rest(config: ServerConfig) -> Iterator[RestServer]:
    with rest_server(config, sandboxes=lambda _tg: FakeSandboxes(), secrets=MemoryStore()) as served:
        yield served
