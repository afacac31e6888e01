"""Vault errors.

VaultError                    anything the vault could not do
└── KeyringUnavailableError   no usable keyring backend (none installed, locked, no D-Bus)
"""

from __future__ import annotations

__all__ = ["KeyringUnavailableError", "VaultError"]


class VaultError(Exception):
    """A vault operation failed; the message says why and what to do, and never holds a secret."""


class KeyringUnavailableError(VaultError):
    """The OS keyring cannot be used here."""
