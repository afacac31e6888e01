"""What the vault tells its callers about vaults and credentials: metadata only, never a secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict

__all__ = ["CredentialInfo", "CredentialSource", "CredentialType", "VaultInfo"]

CredentialType = Literal["static_bearer", "github_token"]
"""static_bearer: a bearer token for one MCP server URL; github_token: a token for one git host."""

CredentialSource = Literal["keyring", "command"]
"""keyring: the secret is stored in the OS keyring; command: a shell command prints it when needed."""


@dataclass(frozen=True)
class VaultInfo:
    id: str
    display_name: str
    metadata: dict[str, str] = field(hash=False)
    created_at: datetime
    credential_count: int
    """Active credentials (archived ones are kept as tombstones, without their secret)."""
    updated_at: datetime | None = None  # None: never changed since created_at (older index files)
    archived_at: datetime | None = None


@dataclass(frozen=True)
class CredentialInfo:
    """`match` is normalized: an MCP server URL for static_bearer, `host[:port]` for github_token.

    `command` is the shell command of a command-sourced credential: it says how to get the
    secret, it is not the secret. The index stores credentials in this very shape.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")  # a stray field in the index file is an error

    id: str
    vault_id: str
    type: CredentialType
    match: str
    source: CredentialSource
    created_at: datetime
    display_name: str | None = None
    command: str | None = None
    metadata: dict[str, str] = field(default_factory=dict, hash=False)
    updated_at: datetime | None = None  # None: never changed since created_at (older index files)
    archived_at: datetime | None = None
    """An archived credential keeps its metadata and loses its secret; it matches nothing."""
