"""`sessions watch` without a server: events folded to a few lines, event text escaped, colours and the spinner only
on a terminal, and when the watch ends."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from server.fronts.cli.event_lines import RESULT_LINES, EventLines
from server.fronts.cli.feeds import CAUGHT_UP, FeedItem
from server.fronts.cli.store_feed import StoreFeed
from server.fronts.cli.terminal_text import Palette, columns, escape, fold, one_line, palette_for
from server.fronts.cli.watch import Watch, exit_status

PLAIN = Palette(on=False)
OURS = re.compile(r"\x1b\[(?:[0-9]+)?m")
"""The only sequences the view writes into lines: SGR colours and their reset."""


def _lines(*events: dict[str, object], palette: Palette = PLAIN, width: int = 100) -> list[str]:
    view = EventLines(palette, width)
    return [line for event in events for line in view.lines(event)]


def _tool_use(name: str = "bash", **fields: object) -> dict[str, object]:
    return {"type": "agent.tool_use", "id": "sevt_use", "name": name, "input": {"command": "ls -la"}, **fields}


def _result(text: str, is_error: bool = False) -> dict[str, object]:
    return {
        "type": "agent.tool_result",
        "id": "sevt_res",
        "tool_use_id": "sevt_use",
        "content": [{"type": "text", "text": text}],
        "is_error": is_error,
    }


def test_a_ten_megabyte_tool_result_prints_a_few_lines_and_says_how_much_was_left_out() -> None:
    huge = "line of output\n" * 700_000  # about 10 MB
    lines = _lines(_tool_use(), _result(huge))
    assert lines[0] == "→ bash  ls -la"
    assert lines[1] == "← bash done"
    assert lines[2 : 2 + RESULT_LINES] == ["  line of output"] * RESULT_LINES
    assert re.fullmatch(r"  … [0-9]+\+ more lines \(10 M chars\)", lines[-1]), lines[-1]
    assert len(lines) == 2 + RESULT_LINES + 1


def test_one_huge_line_is_cut_to_the_width() -> None:
    [head, *body] = _lines(_result("x" * 10_000_000), width=60)
    assert head == "← tool done"
    assert all(len(line) <= 60 for line in body)
    assert body[0].endswith("…")


def test_a_failed_tool_result_says_so() -> None:
    assert _lines(_tool_use(), _result("no such file", is_error=True))[1:] == ["← bash failed", "  no such file"]


@pytest.mark.parametrize(
    "hostile",
    [
        "\x1b[31mred\x1b[0m",
        "\x1b]0;new window title\x07",
        "\x1b[2J\x1b[H",
        "over\rwrite",
        "\x9b31m",  # a C1 control sequence introducer
        "abc\u202egnp.exe",  # a right-to-left override
        "\x00\x08\x7f",
    ],
)
@pytest.mark.parametrize("palette", [PLAIN, Palette(on=True)], ids=["plain", "coloured"])
def test_control_characters_in_any_event_text_are_shown_escaped_never_sent_raw(hostile: str, palette: Palette) -> None:
    events = [
        {"type": "user.message", "content": [{"type": "text", "text": hostile}]},
        {"type": "agent.message", "content": [{"type": "text", "text": f"said {hostile}"}]},
        _tool_use(name=hostile, input={"command": hostile}),
        _result(f"{hostile}\n{hostile}"),
        {"type": "session.error", "error": {"message": hostile, "retry_status": {"type": "exhausted"}}},
        {"type": "session.updated", "title": hostile},
        {"type": hostile},
    ]
    text = "\n".join(_lines(*events, palette=palette))
    stripped = OURS.sub("", text)
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]", stripped), repr(stripped)
    assert escape(hostile) in stripped


def test_escaping_writes_escape_sequences_out_as_text() -> None:
    assert escape("\x1b[31mred") == "\\x1b[31mred"
    assert escape("a\u202eb\tc") == "a\\u202eb    c"
    assert one_line("first\nsecond", 80) == "first…"
    assert fold("", 3, 80) == []


def test_colours_are_off_when_not_a_terminal_or_when_no_color_is_set() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert not palette_for(io.StringIO(), {}).on
    assert palette_for(Terminal(), {}).on
    assert not palette_for(Terminal(), {"NO_COLOR": "1"}).on
    assert not palette_for(Terminal(), {"TERM": "dumb"}).on
    assert palette_for(Terminal(), {"NO_COLOR": ""}).on  # set but empty does not count (no-color.org)
    assert PLAIN.paint("red", "text") == "text"
    assert Palette(on=True).paint("red", "text") == "\x1b[31mtext\x1b[0m"


def test_without_colours_no_line_carries_an_escape_sequence() -> None:
    events = [_tool_use(), _result("fine"), {"type": "session.status_idle", "stop_reason": {"type": "end_turn"}}]
    assert all("\x1b" not in line for line in _lines(*events))


def test_a_wait_for_a_confirmation_or_a_custom_tool_names_the_tools_and_what_to_do() -> None:
    events = [
        _tool_use(evaluated_permission="ask"),
        {"type": "agent.custom_tool_use", "id": "sevt_custom", "name": "lookup_price", "input": {"sku": "A1"}},
        {
            "type": "session.status_idle",
            "stop_reason": {"type": "requires_action", "event_ids": ["sevt_use", "sevt_custom"]},
        },
        {"type": "user.tool_confirmation", "tool_use_id": "sevt_use", "result": "deny", "deny_message": "not now"},
    ]
    lines = _lines(*events)
    assert lines[:4] == [
        "→ bash  ls -la",
        "  needs your confirmation",
        '→ lookup_price (custom tool)  {"sku": "A1"}',
        "⏸ waiting for you: bash, lookup_price",
    ]
    assert "allow or deny it" in lines[4]
    assert lines[5] == "✗ denied bash  not now"


def test_spans_and_usage_print_nothing_and_unknown_types_print_their_type() -> None:
    assert _lines({"type": "span.model_request_start"}, {"type": "session.usage", "usage": {}}) == []
    assert _lines({"type": "agent.something_new"}) == ["· agent.something_new"]


@pytest.mark.parametrize(
    ("status", "reason", "pending", "follow", "expected"),
    [
        ("idle", "end_turn", False, False, 0),
        ("idle", "retries_exhausted", False, False, 1),
        ("terminated", None, False, False, 2),
        ("terminated", None, False, True, 2),
        ("idle", "end_turn", False, True, None),  # --follow
        ("idle", "end_turn", True, False, None),  # a message is waiting to start the next turn
        ("idle", "requires_action", False, False, None),  # waits for a confirmation: the work goes on after it
        ("running", None, False, False, None),
    ],
)
def test_the_watch_ends_on_idle_with_a_status_that_says_how(
    status: str, reason: str | None, pending: bool, follow: bool, expected: int | None
) -> None:
    assert exit_status(status, reason, pending, follow) == expected


class ListFeed:
    """A `SessionFeed` over a fixed list of items (the port's test double: the watch loop is what is tested)."""

    source = "a list"

    def __init__(self, items: list[FeedItem], status: str = "running") -> None:
        self._items = items
        self._status = status

    def sessions(self, limit: int, include_archived: bool) -> list[dict[str, Any]]:
        return []

    def session(self, session_id: str) -> dict[str, Any]:
        return {"id": session_id, "status": self._status, "title": "t", "agent": {"name": "a"}}

    def events(self, session_id: str) -> Iterator[FeedItem]:
        yield from self._items

    def close(self) -> None:
        pass


def _watch(items: list[FeedItem], *, spinner: bool, follow: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    status = Watch(ListFeed(items), out, Palette(on=spinner), 80, spinner, follow).run("sesn_x")
    return status, out.getvalue()


LIVE_TURN: list[FeedItem] = [
    {"type": "user.message", "content": [{"type": "text", "text": "hi"}]},
    CAUGHT_UP,
    {"type": "span.model_request_start"},
    {"type": "event_start", "event": {"type": "agent.message", "id": "sevt_m"}},
    {"type": "event_delta", "event_id": "sevt_m", "delta": {"content": {"type": "text", "text": "Hel\x1b[2Jlo"}}},
    {"type": "agent.message", "content": [{"type": "text", "text": "Hello"}]},
    {"type": "span.model_request_end"},
    {"type": "session.status_idle", "stop_reason": {"type": "end_turn"}},
]


def test_on_a_terminal_a_spinner_shows_the_streamed_text_escaped_and_is_cleared_before_the_next_line() -> None:
    status, out = _watch(LIVE_TURN, spinner=True)
    assert status == 0
    assert "model answering" in out
    assert "Hel\\x1b[2Jlo" in out
    assert "\x1b[2J" not in out
    spun = out.index("model answering")
    assert out.index("\r\x1b[K", spun) < out.index("● Hello", spun)  # the spinner's line is wiped first


def test_off_a_terminal_the_watch_prints_lines_only() -> None:
    status, out = _watch(LIVE_TURN, spinner=False)
    assert status == 0
    assert "\x1b" not in out
    assert "\r" not in out
    assert out.splitlines()[2:] == ["> hi", "● Hello", "■ idle (end_turn)"]


def test_an_idle_seen_while_catching_up_ends_the_watch_only_once_the_log_is_read() -> None:
    items: list[FeedItem] = [
        {"type": "session.status_idle", "stop_reason": {"type": "end_turn"}},
        {"type": "user.message", "content": [{"type": "text", "text": "again"}]},  # the next turn is coming
        CAUGHT_UP,
        {"type": "session.status_running"},
        {"type": "session.status_idle", "stop_reason": {"type": "retries_exhausted"}},
    ]
    status, out = _watch(items, spinner=False)
    assert status == 1
    assert out.splitlines()[-1] == "■ idle (retries_exhausted)"


def test_a_feed_that_ends_ends_the_watch_as_if_the_session_were_gone() -> None:
    assert _watch([CAUGHT_UP, {"type": "session.status_running"}], spinner=False)[0] == 2


def test_wide_characters_count_as_two_columns_when_a_line_is_cut() -> None:
    assert one_line("日本語のテキスト", 9) == "日本語の…"
    assert columns(one_line("日本語のテキスト" * 20, 40)) <= 40
    assert one_line("short", 9) == "short"
    assert one_line("e\u0301te\u0301", 4) == "e\u0301te\u0301"  # combining accents take no column


WAIT_S = 30.0
"""A bound on waiting for something that should happen; never a measurement."""


class _SlowReader:
    """A store reader whose read of the log takes until the test lets it go."""

    def __init__(self) -> None:
        self.reading = threading.Event()
        self.release = threading.Event()
        self.closed_during_read = False
        self.in_read = False

    def events_after(self, session_id: str, after: str | None, limit: int) -> list[object]:
        self.in_read = True
        self.reading.set()
        self.release.wait(WAIT_S)
        self.in_read = False
        return []

    def close(self) -> None:
        self.closed_during_read = self.in_read


def test_closing_the_store_feed_waits_for_the_read_under_way_and_ends_the_reading() -> None:
    """Ctrl-C closes the feed from the main thread while the watch's reader thread may be in a read: the
    connection must not be closed under it (that could hang the interpreter's exit), and the reading stops."""
    reader = _SlowReader()
    feed = StoreFeed(reader, "/data")  # type: ignore[arg-type]
    items: list[object] = []
    thread = threading.Thread(target=lambda: items.extend(feed.events("sesn_x")), daemon=True)
    thread.start()
    assert reader.reading.wait(WAIT_S)
    closing = threading.Thread(target=feed.close, daemon=True)
    closing.start()
    closing.join(0.2)
    assert closing.is_alive()  # waiting for the read to end
    reader.release.set()
    closing.join(WAIT_S)
    thread.join(WAIT_S)
    assert not reader.closed_during_read
    assert not thread.is_alive()
    assert items == [CAUGHT_UP]
