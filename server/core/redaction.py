"""The server's one redactor: every secret the server reveals is registered here before it is used.

Events are redacted before they are stored (so tool returns and the model's context, both built from
the log, never hold a secret) and log records before they are written.
"""

from __future__ import annotations

from vault.redactor import Redactor

__all__ = ["REDACTOR"]

REDACTOR = Redactor()
