"""The credential vault: secrets in the OS keyring, never in the store, a container, a log or a model's context.

This package stands alone: it never imports `server`. The entry point is `Vaults`; see
`vault.vaults` for where each thing is kept.
"""

from vault.errors import (
    ArchivedError,
    CredentialConflictError,
    CredentialNotFoundError,
    InsecureKeyringError,
    KeyringUnavailableError,
    VaultError,
    VaultNotFoundError,
)
from vault.keyring_store import KEYRING_SERVICE, KeyringBackendInfo, KeyringStore, describe_backend
from vault.matching import git_host_of, normalize_git_host, normalize_mcp_url
from vault.memory_store import MemoryStore
from vault.models import CredentialInfo, CredentialSource, CredentialType, VaultInfo
from vault.redactor import MIN_SECRET_LENGTH, REDACTED, JsonLike, RedactingFilter, Redactor
from vault.secret import Secret
from vault.store import SecretBackendInfo, SecretStore
from vault.vaults import ALLOW_INSECURE_KEYRING_VARIABLE, MAX_CREDENTIALS_PER_VAULT, Vaults

__all__ = [
    "ALLOW_INSECURE_KEYRING_VARIABLE",
    "KEYRING_SERVICE",
    "MAX_CREDENTIALS_PER_VAULT",
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "ArchivedError",
    "CredentialConflictError",
    "CredentialInfo",
    "CredentialNotFoundError",
    "CredentialSource",
    "CredentialType",
    "InsecureKeyringError",
    "JsonLike",
    "KeyringBackendInfo",
    "KeyringStore",
    "KeyringUnavailableError",
    "MemoryStore",
    "RedactingFilter",
    "Redactor",
    "Secret",
    "SecretBackendInfo",
    "SecretStore",
    "VaultError",
    "VaultInfo",
    "VaultNotFoundError",
    "Vaults",
    "describe_backend",
    "git_host_of",
    "normalize_git_host",
    "normalize_mcp_url",
]
