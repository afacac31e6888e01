"""Text that is safe and short enough for a terminal: escaping, cutting, folding, and colours that can be off.

Everything a session's log holds came from a model, a tool or a remote server, so none of it may reach the
terminal raw: an escape sequence in a tool's output could move the cursor, retitle the window or worse. Control
characters (C0, DEL, C1) and the bidirectional overrides that reorder what a reader sees are shown as `\\x1b`,
`\\u202e` and so on. Text is cut before it is looked at, so a 10 MB tool result costs no more than a short one.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

__all__ = ["MAX_SCAN_CHARS", "Palette", "columns", "escape", "fold", "one_line", "palette_for"]

MAX_SCAN_CHARS = 16_384
"""Of any text, only this much is split and escaped: enough for the few lines shown of it."""

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """`text` with every character that could steer a terminal written out as an escape (tabs become spaces)."""
    return _UNSAFE.sub(_escaped, text.replace("\t", "    "))


def one_line(text: str, width: int) -> str:
    """The text's first line, escaped and cut to `width` columns (an ellipsis says something was left out)."""
    head = text[: max(width * 4, 64)]
    first, newline, _ = head.partition("\n")
    return _cut(escape(first.rstrip("\r")), width, more=bool(newline) or len(text) > len(head))


def fold(text: str, max_lines: int, width: int) -> list[str]:
    """At most `max_lines` escaped lines of `text`, each cut to `width`, and a last line saying what was left out."""
    head = text[:MAX_SCAN_CHARS]
    lines = head.rstrip("\n").split("\n") if head.strip() else []
    shown = [_cut(escape(line.rstrip("\r")), width) for line in lines[:max_lines]]
    hidden_lines = len(lines) - len(shown)
    if hidden_lines > 0 or len(text) > len(head):
        more = f"{hidden_lines}+" if len(text) > len(head) else str(hidden_lines)
        shown.append(f"… {more} more lines ({_size(len(text))})")
    return shown


def columns(text: str) -> int:
    """How many terminal columns `text` (escaped: no control characters) takes: wide characters two, combining
    marks none."""
    if text.isascii():
        return len(text)
    return sum(_columns(char) for char in text)


def _columns(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _cut(line: str, width: int, more: bool = False) -> str:
    """`line` in at most `width` columns, ending in an ellipsis when it was cut or when `more` follows it."""
    if not more and columns(line) <= width:
        return line
    kept: list[str] = []
    used = 0
    for char in line:
        used += _columns(char)
        if used > width - 1:
            break
        kept.append(char)
    return "".join(kept) + "…"


def _size(chars: int) -> str:
    if chars < 10_000:
        return f"{chars} chars"
    if chars < 10_000_000:
        return f"{chars / 1000:.0f} k chars"
    return f"{chars / 1_000_000:.0f} M chars"


_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35"}


@dataclass(frozen=True)
class Palette:
    """SGR colours, or nothing at all when `on` is False (not a terminal, `NO_COLOR`, `TERM=dumb`)."""

    on: bool

    def paint(self, style: str, text: str) -> str:
        """`text` (already escaped) in `style`, one of bold, dim, red, green, yellow, blue, magenta."""
        if not self.on or not text:
            return text
        return f"\x1b[{_CODES[style]}m{text}\x1b[0m"


def palette_for(stream: TextIO, environ: Mapping[str, str] | None = None) -> Palette:
    """Colours only on a terminal, and never when `NO_COLOR` is set (to anything but empty) or `TERM=dumb`."""
    env = os.environ if environ is None else environ
    wanted = not env.get("NO_COLOR") and env.get("TERM") != "dumb"
    return Palette(on=wanted and stream.isatty())
