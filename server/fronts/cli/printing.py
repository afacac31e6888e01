"""What the CLI's commands print for people and scripts: to stdout, since these commands never run as a transport."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

__all__ = ["out", "print_json", "table"]


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """Left-aligned columns, as wide as their widest cell."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        out("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def print_json(value: object) -> int:
    """`value` as indented JSON; the command's exit status (0)."""
    out(json.dumps(value, indent=2))
    return 0


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
