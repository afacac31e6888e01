"""Shared fixtures: a fresh data dir per test, the server over an in-memory client, and the
rules for tests that need real external parts (Docker, a SecretService keyring, the Inspector)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from chat_model_server import ChatModelServer
from mcp import Client
from model_server import ModelServer
from serving import connected

from server.core.config import ServerConfig

REQUIRED_PARTS = {
    "docker": "MANAGED_SESSIONS_REQUIRE_DOCKER",
    "keyring": "MANAGED_SESSIONS_REQUIRE_KEYRING",
    "inspector": "MANAGED_SESSIONS_REQUIRE_INSPECTOR",
    "claude_code": "MANAGED_SESSIONS_REQUIRE_CLAUDE_CODE",
    "old_sdk": "MANAGED_SESSIONS_REQUIRE_OLD_SDK",
    "browser": "MANAGED_SESSIONS_REQUIRE_BROWSER",
}


def missing_part(part: str, why: str) -> None:
    """Skips the test, or fails it when CI said this part must be there."""
    if os.environ.get(REQUIRED_PARTS[part]) == "1":
        pytest.fail(f"{part} is required here ({REQUIRED_PARTS[part]}=1) but unavailable: {why}")
    pytest.skip(f"{part} unavailable: {why}")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_real_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches a real model endpoint unless it sets one itself."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelServer]:
    """The scripted Messages API, reached by the real `anthropic` client through ANTHROPIC_BASE_URL (in-process
    servers; a child server gets `base_url` in its environment). Every request it saw must have been one the
    real API accepts."""
    with ModelServer() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        yield server
        assert server.violations == []


@pytest.fixture
def chat_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ChatModelServer]:
    """The scripted Chat Completions API, reached by the real `openai` client through OPENAI_BASE_URL, as `model`
    is for Anthropic's. Every request it saw must have been one the real API accepts."""
    with ChatModelServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        yield server
        assert server.violations == []


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A Docker engine that answers and holds the default sandbox image (else skip, or fail in CI)."""
    from server.core.config import DEFAULT_IMAGE

    try:
        client = docker.from_env(timeout=120)
        client.ping()
        client.images.get(DEFAULT_IMAGE)
    except docker.errors.DockerException as exc:
        missing_part("docker", f"{exc} (the image {DEFAULT_IMAGE!r} comes from 'managed-sessions image build')")
        raise  # missing_part skips or fails; this line only tells type checkers so
    yield client
    client.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh data dir; containers and volumes its store made are removed afterwards."""
    path = tmp_path / "data"
    path.mkdir()
    yield path
    remove_sandboxes_of(path)


def remove_sandboxes_of(data_dir: Path) -> None:
    """Removes every container and volume labelled with this data dir's store (a test's leftovers)."""
    database = data_dir / "store.db"
    if not database.exists():
        return
    import docker
    import docker.errors

    from server.hands.docker.sandbox import LABEL_STORE
    from server.store.sqlite.store import Store

    store = Store.open(database)
    try:
        store_id = store.store_id
    finally:
        store.close()
    label = f"{LABEL_STORE}={store_id}"
    try:
        client = docker.from_env()
        for container in client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True)
        for volume in client.volumes.list(filters={"label": label}):
            volume.remove(force=True)
        networks = client.networks.list(filters={"label": label})
        interfaces = [(n.attrs.get("Options") or {}).get("com.docker.network.bridge.name", "") for n in networks]
        for network in networks:
            network.remove()
    except docker.errors.DockerException:
        return  # no engine: nothing was made
    if networks:
        from server.hands.docker.packet_filter import PacketFilter

        PacketFilter(store_id).remove([i for i in interfaces if i])


@pytest.fixture
def config(data_dir: Path) -> ServerConfig:
    return ServerConfig(data_dir=data_dir, model="claude-test-model", image="managed-sessions-sandbox:test")


@pytest.fixture
def scripted_loop_config(data_dir: Path) -> ServerConfig:
    """An in-process runtime's config for agent loops: the default image, the scripted model, retries without
    waiting."""
    from server.core.config import DEFAULT_IMAGE

    return ServerConfig(
        data_dir=data_dir,
        image=DEFAULT_IMAGE,
        model="claude-test",
        model_key_present=True,
        model_retry_delays_s=(0.01, 0.01),
    )


@pytest.fixture
def docker_loop_config(scripted_loop_config: ServerConfig, docker_client: docker.DockerClient) -> ServerConfig:
    """`scripted_loop_config`, for loops on real sandboxes (an engine that answers, with the default image)."""
    return scripted_loop_config


@pytest.fixture
async def client(config: ServerConfig) -> AsyncIterator[Client]:
    async with connected(config) as mcp_client:
        yield mcp_client


@pytest.fixture
def subprocess_env(data_dir: Path) -> dict[str, str]:
    """Environment for a server started as a child process."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "MANAGED_SESSIONS_DATA_DIR": str(data_dir),
        "MANAGED_SESSIONS_MODEL": "claude-test-model",
        # No child reaches a real model endpoint (doctor asks each for its models) unless its test says where.
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        # Tests find a session's container by its session label, which a pooled one lacks (test_warm_pool.py).
        "MANAGED_SESSIONS_WARM_POOL": "0",
    }


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium (or the one `MANAGED_SESSIONS_CHROMIUM` names) for Playwright, which is pointed at it
    with `executable_path`: Playwright's own browser download is never used."""
    path = os.environ.get("MANAGED_SESSIONS_CHROMIUM") or shutil.which("chromium")
    if path is None:
        missing_part("browser", "no chromium on PATH (Debian: apt-get install chromium)")
        raise AssertionError  # missing_part skips or fails; this line only tells type checkers so
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        missing_part("browser", f"{exc} (the dev dependencies in requirements.lock have it)")
    return path


@pytest.fixture
def keyring_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment variables reaching a real, unlocked SecretService keyring."""
    from secret_service import secret_service

    try:
        with secret_service(tmp_path / "keyring") as env:
            yield env
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        missing_part("keyring", str(exc))
