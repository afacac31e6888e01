"""`managed-sessions sessions list|watch`: sessions in the terminal, from a running server or the data dir.

A front door: parse, open the feed (`feeds.open_feed` picks the source), format. Output goes to stdout;
colours only on a terminal and never with `NO_COLOR`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import UTC, datetime
from typing import Any

from server.core.config import ServerConfig
from server.fronts.cli.feeds import open_feed
from server.fronts.cli.terminal_text import Palette, one_line, palette_for
from server.fronts.cli.watch import Watch

__all__ = ["add_sessions_parser", "run_sessions_command"]

_Subparsers = argparse._SubParsersAction  # argparse has no public name for it
PIPE_WIDTH = 160
"""Line width when stdout is not a terminal."""
_STATUS_STYLES = {"running": "green", "waiting": "yellow", "terminated": "red", "idle": "dim"}


def add_sessions_parser(commands: _Subparsers[argparse.ArgumentParser]) -> None:
    """Adds `sessions` and its subcommands to the `managed-sessions` parser."""
    sessions = commands.add_parser("sessions", help="list sessions, or watch one live (from the server or data dir)")
    sub = sessions.add_subparsers(dest="sessions_command", required=True)
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--url", default=None, help="the HTTP server to ask (default: the one serving this data dir, if any)"
    )

    listing = sub.add_parser("list", parents=[server], help="sessions, newest first: status, title, agent, age, usage")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20, at most 100)")
    listing.add_argument("--all", action="store_true", help="include archived sessions")

    watch = sub.add_parser(
        "watch",
        parents=[server],
        help="follow a session's log until it goes idle",
        description="Prints the session's log so far, then each event as it comes. Exits 0 when the session goes "
        "idle, 1 when its turn failed, 2 when it was terminated or deleted, 130 on Ctrl-C. A session waiting for a "
        "confirmation or a custom tool's result is shown waiting, and the watch goes on.",
    )
    watch.add_argument("session_id", help="sesn_ id ('sessions list' shows them)")
    watch.add_argument("--follow", action="store_true", help="keep watching after the session goes idle")


def run_sessions_command(args: argparse.Namespace, config: ServerConfig) -> int:
    feed = open_feed(config, args.url)
    try:
        if args.sessions_command == "list":
            rows = feed.sessions(max(1, min(args.limit, 100)), args.all)
            _print_table(rows, palette_for(sys.stdout))
            return 0
        on_terminal = sys.stdout.isatty()
        width = shutil.get_terminal_size().columns - 1 if on_terminal else PIPE_WIDTH
        watch = Watch(feed, sys.stdout, palette_for(sys.stdout), max(width, 40), on_terminal, args.follow)
        return watch.run(args.session_id)
    except BrokenPipeError:  # the reader went away (`watch ... | head`): nothing is left to tell
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail too
        return 0
    finally:
        feed.close()


def _print_table(sessions: list[dict[str, Any]], palette: Palette) -> None:
    if not sessions:
        sys.stdout.write("no sessions\n")
        return
    now = datetime.now(UTC)
    header = ("ID", "STATUS", "TITLE", "AGENT", "AGE", "USAGE")
    rows = [_row(session, now) for session in sessions]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for index, row in enumerate([header, *rows]):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        if index and palette.on:
            cells[1] = palette.paint(_STATUS_STYLES.get(row[1], "dim"), cells[1])
        sys.stdout.write("  ".join(cells).rstrip() + "\n")


def _row(session: dict[str, Any], now: datetime) -> tuple[str, ...]:
    agent = session.get("agent")
    name = agent.get("name") if isinstance(agent, dict) else None
    usage = session.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    tokens = f"{_count(usage.get('input_tokens'))} in / {_count(usage.get('output_tokens'))} out"
    return (
        one_line(str(session.get("id", "")), 40),
        _status(session),
        one_line(str(session.get("title") or ""), 40),
        one_line(str(name or ""), 30),
        _age(session.get("created_at"), now),
        tokens,
    )


def _status(session: dict[str, Any]) -> str:
    status = str(session.get("status", "?"))
    reason = session.get("stop_reason")
    if status == "idle" and isinstance(reason, dict) and reason.get("type") == "requires_action":
        return "waiting"
    return one_line(status, 20)


def _age(created_at: object, now: datetime) -> str:
    try:
        seconds = (now - datetime.fromisoformat(str(created_at))).total_seconds()
    except ValueError:
        return "?"
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 0)}s"


def _count(value: object) -> str:
    number = value if isinstance(value, int) else 0
    if number >= 1_000_000:
        return f"{number / 1_000_000:.1f}M"
    if number >= 1_000:
        return f"{number / 1_000:.1f}k"
    return str(number)
