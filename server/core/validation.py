"""Pydantic validation failures as one short line a person or a model can act on (every front uses it)."""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["MAX_LISTED_PROBLEMS", "describe_problems", "problem_lines"]

MAX_LISTED_PROBLEMS = 8


def describe_problems(exc: ValidationError, what: str = "invalid arguments") -> str:
    """'invalid arguments (2 problems): field: what is wrong; ...', at most `MAX_LISTED_PROBLEMS` of them,
    without pydantic's echo of each input and its documentation links."""
    listed = problem_lines(exc)
    more = len(listed) - MAX_LISTED_PROBLEMS
    shown = "; ".join(listed[:MAX_LISTED_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
    return f"{what} ({len(listed)} problem{'s' if len(listed) != 1 else ''}): {shown}"


_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")
"""What pydantic puts before the message of a ValueError or assert raised in a validator: noise to a reader."""


def problem_lines(exc: ValidationError, root: str = "arguments") -> list[str]:
    """Each problem as 'where: what is wrong' (`root` where the whole value is wrong), in our validators' own
    words: no pydantic prefix, input echo or documentation link."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        message = error["msg"]
        for prefix in _PYDANTIC_PREFIXES:
            message = message.removeprefix(prefix)
        lines.append(f"{'.'.join(str(part) for part in error['loc']) or root}: {message}")
    return lines
