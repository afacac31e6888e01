"""The seam under the vault: where secret values are kept, by name.

`KeyringStore` (the OS keyring) in production; `MemoryStore` in tests and demos. `Vaults` and the server's
other secret holders (the HTTP token, a session resource's write-only token) take any `SecretStore`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vault.secret import Secret

__all__ = ["SecretBackendInfo", "SecretStore"]


@dataclass(frozen=True)
class SecretBackendInfo:
    """What keeps the values: its name, and whether it keeps them encrypted (or off disk)."""

    name: str
    secure: bool


class SecretStore(Protocol):
    """Secret values by name. Every method raises `VaultError` (or a subclass) when the backend fails."""

    def get(self, name: str) -> Secret | None: ...

    def set(self, secret: Secret) -> None: ...

    def delete(self, name: str) -> None:
        """Removes the value; a name that holds none is no error."""
        ...

    def backend(self) -> SecretBackendInfo: ...
