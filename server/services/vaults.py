"""Vaults as clients see them: metadata only, never a secret.

MCP clients cannot pass a secret in: they sit next to a model's context, so secrets are added on the host with
`managed-sessions vault add`. The REST API, like the hosted one, takes a `static_bearer` token on create and
update (`add_credential`, `update_credential`): it goes straight to the keyring and is never returned. Every
call runs off the event loop (the OS keyring can hang) and reports a vault failure as the `ServerError` it
amounts to (`from_vault_error`), so a front door maps one error tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from server.core.blocking import in_vault_thread
from server.core.errors import InvalidRequestError, from_vault_error
from server.core.vaults import Credential, CredentialDeleted, CredentialList, Vault, VaultDeleted, VaultList
from vault.errors import VaultError
from vault.models import CredentialInfo, CredentialType, VaultInfo
from vault.secret import Secret
from vault.vaults import Vaults

__all__ = ["InfoPage", "VaultService"]

T = TypeVar("T")
Item = TypeVar("Item", VaultInfo, CredentialInfo)


@dataclass(frozen=True)
class InfoPage(Generic[Item]):
    """A page of vaults or credentials, in creation order; `next_cursor` is the last id shown, or None."""

    items: list[Item]
    next_cursor: str | None


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

    # The REST API's operations: the vault's own records (with updated_at and archived_at), pages, secrets in.

    async def create_vault(self, display_name: str, metadata: Mapping[str, str]) -> VaultInfo:
        return await self._call(lambda v: v.create_vault(display_name, dict(metadata)))

    async def vault(self, vault_ref: str) -> VaultInfo:
        return await self._call(lambda v: v.get_vault(vault_ref))

    async def page_vaults(self, limit: int, cursor: str | None, include_archived: bool) -> InfoPage[VaultInfo]:
        return await self._call(lambda v: _page(v.list_vaults(), limit, cursor, include_archived))

    async def update_vault(
        self, vault_ref: str, display_name: str | None, metadata: Mapping[str, str | None] | None
    ) -> VaultInfo:
        return await self._call(lambda v: v.update_vault(vault_ref, display_name=display_name, metadata=metadata))

    async def archive_vault(self, vault_ref: str) -> VaultInfo:
        """Archives the vault and its credentials; their secrets are purged from the keyring."""
        return await self._call(lambda v: v.archive_vault(vault_ref))

    async def add_credential(
        self,
        vault_ref: str,
        type: CredentialType,
        match: str,
        secret: Secret,
        display_name: str | None,
        metadata: Mapping[str, str],
    ) -> CredentialInfo:
        """Keeps `secret` in the keyring (never in the store) and returns the credential's metadata."""
        return await self._call(
            lambda v: v.add_credential(
                vault_ref, type, match, secret=secret, display_name=display_name, metadata=metadata
            )
        )

    async def credential(self, vault_ref: str, credential_id: str) -> CredentialInfo:
        return await self._call(lambda v: v.get_credential(vault_ref, credential_id))

    async def page_credentials(
        self, vault_ref: str, limit: int, cursor: str | None, include_archived: bool
    ) -> InfoPage[CredentialInfo]:
        return await self._call(lambda v: _page(v.list_credentials(vault_ref), limit, cursor, include_archived))

    async def update_credential(
        self,
        vault_ref: str,
        credential_id: str,
        display_name: str | None,
        metadata: Mapping[str, str | None] | None,
        secret: Secret | None,
    ) -> CredentialInfo:
        """Renames ('' clears), patches metadata, and/or replaces a static_bearer's token in the keyring."""

        def update(v: Vaults) -> CredentialInfo:
            if secret is not None and v.get_credential(vault_ref, credential_id).type != "static_bearer":
                raise InvalidRequestError(
                    f"credential {credential_id!r} is not a static_bearer; its secret is replaced on the host "
                    "with 'managed-sessions vault'"
                )
            return v.update_credential(
                vault_ref, credential_id, display_name=display_name, metadata=metadata, secret=secret
            )

        return await self._call(update)

    async def archive_credential(self, vault_ref: str, credential_id: str) -> CredentialInfo:
        """Purges the secret; the metadata stays, marked archived."""
        return await self._call(lambda v: v.archive_credential(vault_ref, credential_id))

    async def _call(self, call: Callable[[Vaults], T]) -> T:
        try:
            return await in_vault_thread(call, self._vaults)
        except VaultError as exc:
            raise from_vault_error(exc) from exc


def _page(items: Sequence[Item], limit: int, cursor: str | None, include_archived: bool) -> InfoPage[Item]:
    """The `limit` items after the one whose id is `cursor`."""
    shown = [item for item in items if include_archived or item.archived_at is None]
    start = 0
    if cursor is not None:
        ids = [item.id for item in shown]
        if cursor not in ids:
            raise InvalidRequestError(
                f"cursor {cursor!r} is not a position in this list (made by another list, or its item was "
                "deleted); start again without one"
            )
        start = ids.index(cursor) + 1
    taken = shown[start : start + limit]
    more = start + limit < len(shown)
    return InfoPage(items=taken, next_cursor=taken[-1].id if more and taken else None)
