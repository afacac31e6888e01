"""Vaults as clients see them: metadata only, never a secret, and no way to pass one in.

Secrets are added on the host with `managed-sessions vault add`, so they never pass through a client or a
model's context. Every call runs off the event loop (the OS keyring can hang) and reports a vault failure
as the `ServerError` it amounts to (`from_vault_error`), so a front door maps one error tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from server.core.blocking import in_vault_thread
from server.core.errors import from_vault_error
from server.core.vaults import Credential, CredentialDeleted, CredentialList, Vault, VaultDeleted, VaultList
from vault.errors import VaultError
from vault.vaults import Vaults

__all__ = ["VaultService"]

T = TypeVar("T")


class VaultService:
    """Creates, reads and deletes vaults and their credentials' metadata."""

    def __init__(self, vaults: Vaults) -> None:
        self._vaults = vaults

    async def create(self, display_name: str, metadata: Mapping[str, str]) -> Vault:
        return await self._call(lambda v: Vault.of(v.create_vault(display_name, dict(metadata))))

    async def list(self) -> VaultList:
        return await self._call(lambda v: VaultList(vaults=[Vault.of(i) for i in v.list_vaults()]))

    async def get(self, vault_ref: str) -> Vault:
        """The vault with that id or display name."""
        return await self._call(lambda v: Vault.of(v.get_vault(vault_ref)))

    async def delete(self, vault_ref: str) -> VaultDeleted:
        """Deletes the vault and every credential in it, secrets included."""

        def delete(v: Vaults) -> VaultDeleted:
            info = v.get_vault(vault_ref)
            v.delete_vault(info.id)
            return VaultDeleted(id=info.id, credentials_removed=info.credential_count)

        return await self._call(delete)

    async def credentials(self, vault_ref: str) -> CredentialList:
        def listing(v: Vaults) -> CredentialList:
            info = v.get_vault(vault_ref)
            return CredentialList(vault_id=info.id, credentials=[Credential.of(c) for c in v.list_credentials(info.id)])

        return await self._call(listing)

    async def delete_credential(self, vault_ref: str, credential_id: str) -> CredentialDeleted:
        """Deletes the credential: its metadata and its secret."""

        def delete(v: Vaults) -> CredentialDeleted:
            info = v.get_vault(vault_ref)
            v.remove_credential(info.id, credential_id)
            return CredentialDeleted(id=credential_id, vault_id=info.id)

        return await self._call(delete)

    async def _call(self, call: Callable[[Vaults], T]) -> T:
        try:
            return await in_vault_thread(call, self._vaults)
        except VaultError as exc:
            raise from_vault_error(exc) from exc
