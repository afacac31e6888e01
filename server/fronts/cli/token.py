"""`managed-sessions token show|rotate`: the HTTP bearer token kept in the keyring."""

from __future__ import annotations

import sys

from server.core.config import ServerConfig
from server.services.runtime import http_token

__all__ = ["rotate_token", "show_token"]


def show_token(config: ServerConfig) -> int:
    tokens = http_token(config)
    if tokens.configured():
        sys.stderr.write("MANAGED_SESSIONS_TOKEN is set; the server uses that value, not the keyring's.\n")
        return 1
    token = tokens.stored()
    if token is None:
        sys.stderr.write("no token yet: 'managed-sessions serve --transport http' makes one on first start.\n")
        return 1
    sys.stdout.write(token + "\n")
    return 0


def rotate_token(config: ServerConfig) -> int:
    http_token(config).make()
    sys.stderr.write("new token stored; restart the HTTP server and give clients 'managed-sessions token show'.\n")
    return show_token(config)
