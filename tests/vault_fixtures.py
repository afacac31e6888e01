"""A session's vault for tests: in an in-memory secret store the runtime is opened with (`secrets=`), written as
`managed-sessions vault add` writes it (another `Vaults` on the same index and store)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vault import MemoryStore, Secret, Vaults


@dataclass
class RemoteVault:
    secrets: MemoryStore
    vault_id: str


def vault_with_bearer(index_path: Path, url: str, token: str) -> RemoteVault:
    """A vault holding `token` as the static bearer for the MCP server at `url`."""
    secrets = MemoryStore()
    vaults = Vaults(index_path, secrets)
    vault_id = vaults.create_vault("remote servers").id
    vaults.add_credential(vault_id, "static_bearer", url, secret=Secret("remote", token))
    return RemoteVault(secrets, vault_id)
