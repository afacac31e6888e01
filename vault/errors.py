"""Vault errors.

VaultError                      anything the vault could not do; the message says what to do next
├── KeyringUnavailableError     no usable keyring backend (none installed, locked, no D-Bus)
├── InsecureKeyringError        the backend keeps secrets in plain text (or not at all) and nobody opted in
├── VaultNotFoundError          no vault with that id or display name (also a LookupError)
├── CredentialNotFoundError     no credential with that id in that vault (also a LookupError)
├── CredentialConflictError     a vault already holds a credential for that type and match
└── ArchivedError               the vault or credential is archived, so it cannot be changed or used
"""

from __future__ import annotations

__all__ = [
    "ArchivedError",
    "CredentialConflictError",
    "CredentialNotFoundError",
    "InsecureKeyringError",
    "KeyringUnavailableError",
    "VaultError",
    "VaultNotFoundError",
]


class VaultError(Exception):
    """A vault operation failed; the message says why and what to do, and never holds a secret."""


class KeyringUnavailableError(VaultError):
    """The OS keyring cannot be used here."""


class InsecureKeyringError(VaultError):
    """The keyring backend would not keep a secret encrypted, and the user did not opt in to it anyway."""


class VaultNotFoundError(VaultError, LookupError):
    """No vault has that id or display name."""


class CredentialNotFoundError(VaultError, LookupError):
    """The vault holds no credential with that id."""


class CredentialConflictError(VaultError):
    """A vault may hold one credential per (type, match); the message names the one already there."""


class ArchivedError(VaultError):
    """The vault or credential is archived: read-only, and its secrets are gone."""
