"""Fixtures for the vault: an in-memory keyring backend for fast tests, the real SecretService for the rest.

Both are installed as keyring's global backend (that is what `vault.KeyringStore` talks to)
and the previous backend is put back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.SecretService
import keyring.errors
import pytest

from vault import Vaults


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring backend in a dict; it counts reads so tests can see the hot path."""

    priority = -1  # type: ignore[assignment]  # never picked by keyring's own detection, only set explicitly

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}
        self.reads = 0

    def get_password(self, service: str, username: str) -> str | None:
        self.reads += 1
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(f"no {username!r} in {service!r}")


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def index_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "vault" / "index.json"


@pytest.fixture
def vaults(memory_keyring: MemoryKeyring, index_path: Path) -> Vaults:
    return Vaults(index_path)


@pytest.fixture
def real_keyring(keyring_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This process talks to the test's own SecretService (gnome-keyring on a private D-Bus)."""
    previous = keyring.get_keyring()
    for name, value in keyring_env.items():
        monkeypatch.setenv(name, value)
    # keyring detects viable backends once per process (before this bus existed), so name the backend.
    backend = keyring.backends.SecretService.Keyring()
    keyring.set_keyring(backend)
    yield keyring_env
    keyring.set_keyring(previous)
