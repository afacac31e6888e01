"""Vaults and credentials as tools return them: metadata only, never a secret."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from vault.models import CredentialInfo, VaultInfo

__all__ = ["Credential", "CredentialDeleted", "CredentialList", "Vault", "VaultDeleted", "VaultList"]


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Vault(BaseModel):
    """A named set of credentials; sessions use it through `vault_ids`."""

    type: Literal["vault"] = "vault"
    id: str = Field(description="vlt_ id; pass it in create_session's vault_ids.")
    display_name: str
    metadata: dict[str, str]
    credential_count: int
    created_at: str

    @classmethod
    def of(cls, info: VaultInfo) -> Vault:
        return cls(
            id=info.id,
            display_name=info.display_name,
            metadata=dict(info.metadata),
            credential_count=info.credential_count,
            created_at=_rfc3339(info.created_at),
        )


class Credential(BaseModel):
    """What a credential is for; its secret stays in the OS keyring (or comes from a command) and is never shown."""

    id: str = Field(description="cred_ id.")
    vault_id: str
    type: Literal["static_bearer", "github_token"] = Field(
        description="static_bearer: bearer token for an MCP server URL; github_token: token for a git host."
    )
    match: str = Field(description="The normalized MCP server URL or git host it is used for.")
    display_name: str | None = None
    source: Literal["keyring", "command"] = Field(
        description="keyring: stored secret; command: a host command prints it when needed."
    )
    created_at: str

    @classmethod
    def of(cls, info: CredentialInfo) -> Credential:
        return cls(
            id=info.id,
            vault_id=info.vault_id,
            type=info.type,
            match=info.match,
            display_name=info.display_name,
            source=info.source,
            created_at=_rfc3339(info.created_at),
        )


class VaultList(BaseModel):
    vaults: list[Vault]


class CredentialList(BaseModel):
    vault_id: str
    credentials: list[Credential]


class VaultDeleted(BaseModel):
    id: str
    type: Literal["vault_deleted"] = "vault_deleted"
    deleted: Literal[True] = True
    credentials_removed: int


class CredentialDeleted(BaseModel):
    id: str
    vault_id: str
    type: Literal["vault_credential_deleted"] = "vault_credential_deleted"
    deleted: Literal[True] = True
