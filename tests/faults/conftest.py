"""Fixtures of the fault-injection suite: a small disk to fill, a Docker engine to cut, a scripted model."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker_proxy import DockerProxy
from keyring_daemon import KeyringDaemons, killable_secret_service
from small_disk import SmallDisk, mounted_small_disk


@pytest.fixture
def small_disk() -> Iterator[SmallDisk]:
    """A 64 MiB tmpfs (root only: skipped elsewhere, a failure where MANAGED_SESSIONS_REQUIRE_FAULTS=1)."""
    with mounted_small_disk(64) as disk:
        yield disk


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, docker_client: docker.DockerClient) -> Iterator[DockerProxy]:
    """The real engine behind a socket the test can cut and restore; servers made in the test use it."""
    with DockerProxy() as proxy:
        monkeypatch.setenv("DOCKER_HOST", proxy.url)
        yield proxy


@pytest.fixture
def daemons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyringDaemons]:
    """A private SecretService keyring this process uses, whose daemons the test may kill (skipped, or failed
    where MANAGED_SESSIONS_REQUIRE_KEYRING=1, without gnome-keyring and D-Bus)."""
    from conftest import missing_part

    service = killable_secret_service(tmp_path / "keyring", monkeypatch)
    try:
        started = service.__enter__()
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        missing_part("keyring", str(exc))
        raise
    try:
        yield started
    finally:
        service.__exit__(None, None, None)
