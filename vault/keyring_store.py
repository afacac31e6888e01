"""The one module that talks to `keyring`.

Every keyring failure is translated here, once, into a `VaultError` that says
what to do. A backend that stores secrets in plain text, or none at all, is
reported as not secure; callers decide whether to refuse.

`keyring` is imported where a secret is read or written, not with this module: it pulls in importlib_metadata
and its backends' packages, which a server would otherwise import on its way to its first answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vault.errors import KeyringUnavailableError, VaultError
from vault.secret import Secret
from vault.store import SecretBackendInfo

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = ["KEYRING_SERVICE", "KeyringBackendInfo", "KeyringStore", "describe_backend"]

KEYRING_SERVICE = "managed-sessions"
"""The one keyring service everything of ours lives under (the HTTP token, each credential by its id).
Stable on purpose: renaming it would orphan every stored secret."""

_INSECURE_BACKENDS = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt.file.PlaintextKeyring")
_UNAVAILABLE_HINT = (
    "no usable OS keyring. On a Linux server without a desktop, run a SecretService daemon "
    "(for example gnome-keyring inside dbus-run-session); elsewhere use the system keychain"
)


KeyringBackendInfo = SecretBackendInfo


def describe_backend() -> KeyringBackendInfo:
    """Which backend keyring picked, and whether it keeps secrets encrypted by the OS.

    keyring chains several backends when more than one is viable, and a chained write falls
    through to the next backend when one fails; so a chain is only as secure as its weakest link.
    """
    import keyring

    backend: KeyringBackend = keyring.get_keyring()
    name = _name_of(backend)
    if name == "keyring.backends.chainer.ChainerBackend":
        chained = [_name_of(b) for b in getattr(backend, "backends", [])]
        return KeyringBackendInfo(
            name=f"{name}({', '.join(chained)})", secure=bool(chained) and all(_is_secure(n) for n in chained)
        )
    return KeyringBackendInfo(name=name, secure=_is_secure(name))


def _name_of(backend: KeyringBackend) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"


def _is_secure(name: str) -> bool:
    return not any(name.startswith(prefix) for prefix in _INSECURE_BACKENDS)


class KeyringStore:
    """Secrets under one keyring service, each under its own name (the keyring 'username')."""

    def __init__(self, service: str) -> None:
        self._service = service

    def get(self, name: str) -> Secret | None:
        import keyring

        try:
            value = keyring.get_password(self._service, name)
        except Exception as exc:  # every backend failure is translated here, once
            raise _translate(exc, f"read {name!r}") from exc
        return None if value is None else Secret(name, value)

    def set(self, secret: Secret) -> None:
        import keyring

        try:
            keyring.set_password(self._service, secret.name, secret.reveal())
        except Exception as exc:
            raise _translate(exc, f"store {secret.name!r}") from exc

    def backend(self) -> SecretBackendInfo:
        return describe_backend()

    def delete(self, name: str) -> None:
        import keyring.errors

        try:
            keyring.delete_password(self._service, name)
        except keyring.errors.PasswordDeleteError:
            return
        except Exception as exc:
            raise _translate(exc, f"delete {name!r}") from exc


def _translate(exc: Exception, action: str) -> VaultError:
    """The vault error for a backend failure. Backends raise more than `KeyringError`: SecretService lets a D-Bus
    that went away through as its own exception, for one; all of them mean the keyring cannot serve now. Only the
    exception's type is quoted: its text is the backend's and is not ours to pass on."""
    import keyring.errors

    kind = type(exc).__name__
    if isinstance(exc, keyring.errors.KeyringError) and not isinstance(
        exc, keyring.errors.NoKeyringError | keyring.errors.InitError | keyring.errors.KeyringLocked
    ):
        return VaultError(f"cannot {action} in the keyring: {kind}")
    return KeyringUnavailableError(f"cannot {action}: {_UNAVAILABLE_HINT} ({kind})")
