"""The credential vault: secrets in the OS keyring, never in the store, a container, a log or a model's context.

This package stands alone: it never imports `server`. The entry point is `Vaults`; see
`vault.vaults` for where each thing is kept.

Names are imported from their modules on first use (PEP 562): `import vault.errors` (which every server module
that raises a vault error does) then costs one small module, not the keyring, the index and their pydantic models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

_MODULE_OF = {
    "ALLOW_INSECURE_KEYRING_VARIABLE": "vault.vaults",
    "ArchivedError": "vault.errors",
    "CredentialConflictError": "vault.errors",
    "CredentialInfo": "vault.models",
    "CredentialNotFoundError": "vault.errors",
    "CredentialSource": "vault.models",
    "CredentialType": "vault.models",
    "InsecureKeyringError": "vault.errors",
    "JsonLike": "vault.redactor",
    "KEYRING_SERVICE": "vault.keyring_store",
    "KeyringBackendInfo": "vault.keyring_store",
    "KeyringStore": "vault.keyring_store",
    "KeyringUnavailableError": "vault.errors",
    "MAX_CREDENTIALS_PER_VAULT": "vault.vaults",
    "MIN_SECRET_LENGTH": "vault.redactor",
    "MemoryStore": "vault.memory_store",
    "REDACTED": "vault.redactor",
    "RedactingFilter": "vault.redactor",
    "Redactor": "vault.redactor",
    "Secret": "vault.secret",
    "SecretBackendInfo": "vault.store",
    "SecretStore": "vault.store",
    "VaultError": "vault.errors",
    "VaultInfo": "vault.models",
    "VaultNotFoundError": "vault.errors",
    "Vaults": "vault.vaults",
    "describe_backend": "vault.keyring_store",
    "git_host_of": "vault.matching",
    "normalize_git_host": "vault.matching",
    "normalize_mcp_url": "vault.matching",
}


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up here once
    return value
