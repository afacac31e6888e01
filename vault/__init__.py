"""The credential vault: secrets in the OS keyring, never in the store, a container, a log or a model's context.

This package stands alone: it never imports `server`.
"""

from vault.errors import KeyringUnavailableError, VaultError
from vault.keyring_store import KeyringBackendInfo, KeyringStore, describe_backend
from vault.secret import Secret

__all__ = [
    "KeyringBackendInfo",
    "KeyringStore",
    "KeyringUnavailableError",
    "Secret",
    "VaultError",
    "describe_backend",
]
