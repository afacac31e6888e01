"""Logging to stderr only: on stdio, stdout is the MCP transport itself."""

from __future__ import annotations

import logging
import sys

from server.core.redaction import REDACTOR
from vault.redactor import RedactingFilter

__all__ = ["configure_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Installs one stderr handler on the root logger (idempotent), redacting secrets.

    The MCP SDK calls `logging.basicConfig` when a server is built; because a
    handler is already installed by then, its call changes nothing.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    if not any(getattr(h, "_managed_sessions", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(RedactingFilter(REDACTOR))  # a secret the server used never reaches a log line
        handler._managed_sessions = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # Per-request access lines drown the lifecycle messages that matter.
    for noisy in ("httpx", "httpx2", "uvicorn.access", "mcp.server.lowlevel.server"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
