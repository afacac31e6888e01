"""Secrets kept in this process's memory: for tests and demos, where no OS keyring should be touched."""

from __future__ import annotations

import threading

from vault.secret import Secret
from vault.store import SecretBackendInfo

__all__ = ["MemoryStore"]


class MemoryStore:
    """A `SecretStore` in a dict; nothing is written anywhere, so it counts as secure.

    Attributes:
        reads: how many `get` calls it answered (tests count keyring round trips with it).
    """

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._guard = threading.Lock()  # the vault calls stores from worker threads
        self.reads = 0

    def get(self, name: str) -> Secret | None:
        with self._guard:
            self.reads += 1
            value = self._values.get(name)
        return None if value is None else Secret(name, value)

    def set(self, secret: Secret) -> None:
        with self._guard:
            self._values[secret.name] = secret.reveal()

    def delete(self, name: str) -> None:
        with self._guard:
            self._values.pop(name, None)

    def backend(self) -> SecretBackendInfo:
        return SecretBackendInfo(name="memory (this process)", secure=True)
