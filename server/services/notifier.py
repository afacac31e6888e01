"""Wakes long polls when a session's log grows.

Only the process that owns the data dir appends events (see `server.core.lock`),
so an in-process signal is enough. A poller arms the signal *before* it reads
the log, then waits on it if the read found nothing new: an append that lands
between the read and the wait has already set the armed signal, so no wake-up
is lost.
"""

from __future__ import annotations

import anyio

__all__ = ["EventNotifier"]


class EventNotifier:
    """Per-session signals: 'something was appended', and the rarer 'the session may have settled'
    (it went idle or terminated, or a run ended), which a waiter that needs no progress can wait on alone."""

    def __init__(self) -> None:
        self._signals: dict[str, anyio.Event] = {}
        self._settle_signals: dict[str, anyio.Event] = {}

    def arm(self, session_id: str, settle_only: bool = False) -> anyio.Event:
        """The signal the next append (or, with `settle_only`, the next settling) sets."""
        signals = self._settle_signals if settle_only else self._signals
        return signals.setdefault(session_id, anyio.Event())

    def notify(self, session_id: str, settled: bool = False) -> None:
        for signals in (self._signals, self._settle_signals) if settled else (self._signals,):
            signal = signals.pop(session_id, None)
            if signal is not None:
                signal.set()
