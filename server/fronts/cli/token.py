"""`managed-sessions token show|rotate`: the HTTP bearer token kept in the keyring."""

from __future__ import annotations

import secrets
import sys

from server.core.config import ServerConfig
from server.fronts.http import TOKEN_BYTES, TOKEN_NAME, HttpSetupError
from vault import KEYRING_SERVICE, KeyringStore, Secret, VaultError

__all__ = ["rotate_token", "show_token"]


def show_token(config: ServerConfig) -> int:
    if config.token:
        sys.stderr.write("MANAGED_SESSIONS_TOKEN is set; the server uses that value, not the keyring's.\n")
        return 1
    try:
        secret = KeyringStore(KEYRING_SERVICE).get(TOKEN_NAME)
    except VaultError as exc:
        raise HttpSetupError(str(exc)) from exc
    if secret is None:
        sys.stderr.write("no token yet: 'managed-sessions serve --transport http' makes one on first start.\n")
        return 1
    sys.stdout.write(secret.reveal() + "\n")
    return 0


def rotate_token(config: ServerConfig) -> int:
    try:
        KeyringStore(KEYRING_SERVICE).set(Secret(TOKEN_NAME, secrets.token_urlsafe(TOKEN_BYTES)))
    except VaultError as exc:
        raise HttpSetupError(str(exc)) from exc
    sys.stderr.write("new token stored; restart the HTTP server and give clients 'managed-sessions token show'.\n")
    return show_token(config)
