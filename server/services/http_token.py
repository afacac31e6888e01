"""The HTTP transport's bearer token, kept beside the vault's secrets (never in a file or the store).

`MANAGED_SESSIONS_TOKEN` wins when set; otherwise the token lives in the secret store under `http-token`, made on
the first HTTP start and replaced by `managed-sessions token rotate`. Fronts (the HTTP app, the CLI) call this;
which secret store it uses is the composition root's choice (`keyring_secrets`)."""

from __future__ import annotations

import secrets

from server.core.config import ServerConfig
from server.core.errors import ServerError
from vault import Secret, SecretStore, VaultError

__all__ = ["TOKEN_BYTES", "TOKEN_NAME", "HttpSetupError", "HttpToken"]

TOKEN_NAME = "http-token"  # noqa: S105 - the secret's name, not a secret
TOKEN_BYTES = 32


class HttpSetupError(ServerError):
    """The HTTP transport cannot start as configured."""


class HttpToken:
    """Reads, makes and replaces the token HTTP clients must present."""

    def __init__(self, config: ServerConfig, store: SecretStore) -> None:
        self._config = config
        self._store = store

    def configured(self) -> str | None:
        """`MANAGED_SESSIONS_TOKEN`, if set: it wins over the stored token."""
        return self._config.token or None

    def stored(self) -> str | None:
        try:
            secret = self._store.get(TOKEN_NAME)
        except VaultError as exc:
            raise HttpSetupError(f"{exc}. Or set MANAGED_SESSIONS_TOKEN yourself.") from exc
        return None if secret is None else secret.reveal()

    def make(self) -> str:
        """A new random token, stored (replacing any older one)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        try:
            self._store.set(Secret(TOKEN_NAME, token))
        except VaultError as exc:
            raise HttpSetupError(f"{exc}. Or set MANAGED_SESSIONS_TOKEN yourself.") from exc
        return token
