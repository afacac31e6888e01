"""Wakes long polls when a session's log grows.

Only the process that owns the data dir appends events (see `server.lock`),
so an in-process signal is enough. A poller arms the signal *before* it reads
the log, then waits on it if the read found nothing new: an append that lands
between the read and the wait has already set the armed signal, so no wake-up
is lost.
"""

from __future__ import annotations

import anyio

__all__ = ["EventNotifier"]


class EventNotifier:
    """Per-session 'something new was appended' signals."""

    def __init__(self) -> None:
        self._signals: dict[str, anyio.Event] = {}

    def arm(self, session_id: str) -> anyio.Event:
        """The signal the next append to `session_id` sets."""
        return self._signals.setdefault(session_id, anyio.Event())

    def notify(self, session_id: str) -> None:
        signal = self._signals.pop(session_id, None)
        if signal is not None:
            signal.set()
