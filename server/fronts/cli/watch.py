"""`sessions watch`: a session's log as it happens, until the session goes idle (or, with `--follow`, for good).

The feed is read in a thread of its own, so the main thread can turn the spinner while a model request is out
(on a terminal only; elsewhere the output is the lines alone). The exit status says how the watch ended: 0 the
session went idle with nothing pending, 1 its turn failed (`retries_exhausted`), 2 it was terminated or deleted.
A session waiting for a confirmation or a custom tool's result is shown waiting, and the watch goes on.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

from server.fronts.cli.event_lines import EventLines
from server.fronts.cli.feeds import CAUGHT_UP, FeedItem, SessionFeed
from server.fronts.cli.terminal_text import Palette, one_line

__all__ = ["SPINNER_FRAMES", "Watch", "exit_status"]

SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
SPIN_S = 0.1
QUEUE_ITEMS = 100
"""Items the reader may get ahead by; past this it waits (memory stays bounded whatever the log holds)."""
PREVIEW_CHARS = 400
_END: Final = object()
_PENDING_TYPES = frozenset({"user.message", "user.tool_confirmation", "user.custom_tool_result"})


@dataclass
class _Status:
    """Where the session stands, folded from the events seen so far."""

    status: str
    stop_reason: str | None = None
    pending: bool = False  # a message (or answer) came after the last idle: a turn is about to start

    def see(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind in _PENDING_TYPES:
            self.pending = True
        elif kind == "session.status_running":
            self.status, self.pending = "running", False
        elif kind == "session.status_idle":
            reason = event.get("stop_reason")
            self.status, self.pending = "idle", False
            self.stop_reason = str(reason.get("type")) if isinstance(reason, dict) else None
        elif kind in ("session.status_terminated", "session.deleted"):
            self.status = "terminated"


def exit_status(status: str, stop_reason: str | None, pending: bool, follow: bool) -> int | None:
    """The watch's exit status if it should end now, else None."""
    if status == "terminated":
        return 2
    if follow or pending or status != "idle" or stop_reason == "requires_action":
        return None
    return 1 if stop_reason == "retries_exhausted" else 0


@dataclass
class Watch:
    """One watch of one session, drawing to `out`."""

    feed: SessionFeed
    out: TextIO
    palette: Palette
    width: int
    spinner: bool
    follow: bool = False
    _answering: bool = field(default=False, init=False)  # a model request is out: the spinner turns
    _preview: str = field(default="", init=False)  # the tail of the text it has streamed so far
    _frame: int = field(default=0, init=False)
    _drawn: bool = field(default=False, init=False)  # the spinner's line is on screen (cleared before any output)
    _queue: queue.Queue[object] = field(default_factory=lambda: queue.Queue(QUEUE_ITEMS), init=False)

    def run(self, session_id: str) -> int:
        session = self.feed.session(session_id)
        self._header(session)
        state = _Status(str(session.get("status", "idle")))
        view = EventLines(self.palette, self.width)
        threading.Thread(target=self._pump, args=(self.feed.events(session_id),), daemon=True).start()
        caught_up = False
        try:
            while True:
                item = self._next()
                if item is None:
                    continue
                if item is _END:
                    return 2
                if isinstance(item, BaseException):
                    raise item
                if item == CAUGHT_UP:
                    caught_up = True
                elif isinstance(item, dict):
                    state.see(item)
                    self._show(view.lines(item))
                    self._track_model(item)
                if caught_up:
                    done = exit_status(state.status, state.stop_reason, state.pending, self.follow)
                    if done is not None:
                        return done
        finally:
            self._clear()

    def _pump(self, items: Iterator[FeedItem]) -> None:
        try:
            for item in items:
                self._queue.put(item)
        except Exception as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            self._queue.put(exc)
        else:
            self._queue.put(_END)

    def _next(self) -> object | None:
        """The next item, or None after a spinner frame's wait with nothing (the frame turned meanwhile)."""
        try:
            return self._queue.get(timeout=SPIN_S if self.spinner else 1.0)
        except queue.Empty:
            self._spin()
            return None

    def _header(self, session: dict[str, Any]) -> None:
        agent = session.get("agent")
        name = agent.get("name") if isinstance(agent, dict) else None
        title = session.get("title") or "untitled"
        line = f"session {session.get('id')}  {title}  (agent {name})"
        source = f"reading {self.feed.source}"
        self._show(
            [
                self.palette.paint("bold", one_line(line, self.width)),
                self.palette.paint("dim", one_line(source, self.width)),
            ]
        )

    def _track_model(self, item: dict[str, Any]) -> None:
        """The spinner runs from a model request's start to its end; previews of its text ride along."""
        kind = item.get("type")
        if kind == "span.model_request_start":
            self._answering, self._preview = True, ""
        elif kind in ("span.model_request_end", "agent.message", "session.status_idle", "session.error"):
            self._answering, self._preview = False, ""
            self._clear()
        elif kind == "event_delta":
            delta = item.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            text = content.get("text") if isinstance(content, dict) else None
            if isinstance(text, str):
                self._preview = (self._preview + text)[-PREVIEW_CHARS:]
        if self._answering:
            self._spin()

    def _show(self, lines: list[str]) -> None:
        if not lines:
            return
        self._clear()
        self.out.write("".join(line + "\n" for line in lines))
        self.out.flush()

    def _spin(self) -> None:
        if not (self.spinner and self._answering):
            return
        self._frame = (self._frame + 1) % len(SPINNER_FRAMES)
        said = " ".join(self._preview.split())
        text = f"{SPINNER_FRAMES[self._frame]} model answering"
        room = self.width - len(text) - 3
        tail = "  " + one_line(said[-room:], room) if said and room > 8 else ""
        self.out.write("\r\x1b[K" + self.palette.paint("yellow", text) + self.palette.paint("dim", tail))
        self.out.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._drawn = False
