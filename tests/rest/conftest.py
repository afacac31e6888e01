"""REST servers per test over fake sandboxes and an in-memory secret store, with or without the scripted model;
an older SDK's Python."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import missing_part
from fake_sandboxes import FakeSandboxes
from model_server import ModelServer
from rest_serving import RestServer, rest_server

from server.core.config import DEFAULT_IMAGE, ServerConfig
from vault.memory_store import MemoryStore


@pytest.fixture
def served(data_dir: Path, model: ModelServer) -> Iterator[RestServer]:
    """A REST server whose sessions run: the scripted model, fake sandboxes, in-memory secrets; an idle event
    stream pings every 0.2 s."""
    config = ServerConfig(
        data_dir=data_dir, image=DEFAULT_IMAGE, model="claude-test", model_key_present=True, stream_ping_s=0.2
    )
    with rest_server(config, sandboxes=lambda _tg: FakeSandboxes(), secrets=MemoryStore()) as server:
        yield server


@pytest.fixture
def rest(config: ServerConfig) -> Iterator[RestServer]:
    with rest_server(config, sandboxes=lambda _tg: FakeSandboxes(), secrets=MemoryStore()) as served:
        yield served


OLD_SDK_VERSION = "0.95.0"
DEFAULT_OLD_PYTHON = Path.home() / f".cache/managed-sessions-test/anthropic-{OLD_SDK_VERSION}/bin/python"


@pytest.fixture
def old_python() -> str:
    """A Python with an older `anthropic` SDK (0.9x, as frameworks still pin): `.ci/run` makes it."""
    python = Path(os.environ.get("OLD_ANTHROPIC_PYTHON") or DEFAULT_OLD_PYTHON)
    if not python.exists():
        missing_part(
            "old_sdk",
            f"no {python}; make it with `uv venv {python.parents[1]} && uv pip install --python {python} "
            f"anthropic=={OLD_SDK_VERSION}` or set OLD_ANTHROPIC_PYTHON",
        )
    return str(python)
