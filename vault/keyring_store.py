"""The one module that talks to `keyring`.

Every keyring failure is translated here, once, into a `VaultError` that says
what to do. A backend that stores secrets in plain text, or none at all, is
reported as not secure; callers decide whether to refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

from vault.errors import KeyringUnavailableError, VaultError
from vault.secret import Secret

__all__ = ["KeyringBackendInfo", "KeyringStore", "describe_backend"]

_INSECURE_BACKENDS = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt.file.PlaintextKeyring")
_UNAVAILABLE_HINT = (
    "no usable OS keyring. On a Linux server without a desktop, run a SecretService daemon "
    "(for example gnome-keyring inside dbus-run-session); elsewhere use the system keychain"
)


@dataclass(frozen=True)
class KeyringBackendInfo:
    name: str
    secure: bool


def describe_backend() -> KeyringBackendInfo:
    """Which backend keyring picked, and whether it keeps secrets encrypted by the OS."""
    backend: KeyringBackend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    return KeyringBackendInfo(name=name, secure=not any(name.startswith(p) for p in _INSECURE_BACKENDS))


class KeyringStore:
    """Secrets under one keyring service, each under its own name (the keyring 'username')."""

    def __init__(self, service: str) -> None:
        self._service = service

    def get(self, name: str) -> Secret | None:
        try:
            value = keyring.get_password(self._service, name)
        except keyring.errors.KeyringError as exc:
            raise _translate(exc, f"read {name!r}") from exc
        return None if value is None else Secret(name, value)

    def set(self, secret: Secret) -> None:
        try:
            keyring.set_password(self._service, secret.name, secret.reveal())
        except keyring.errors.KeyringError as exc:
            raise _translate(exc, f"store {secret.name!r}") from exc

    def delete(self, name: str) -> None:
        try:
            keyring.delete_password(self._service, name)
        except keyring.errors.PasswordDeleteError:
            return
        except keyring.errors.KeyringError as exc:
            raise _translate(exc, f"delete {name!r}") from exc


def _translate(exc: keyring.errors.KeyringError, action: str) -> VaultError:
    if isinstance(exc, keyring.errors.NoKeyringError | keyring.errors.InitError | keyring.errors.KeyringLocked):
        return KeyringUnavailableError(f"cannot {action}: {_UNAVAILABLE_HINT} ({type(exc).__name__})")
    return VaultError(f"cannot {action} in the keyring: {type(exc).__name__}")
