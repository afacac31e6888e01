"""Pydantic validation failures as one short line a person or a model can act on (every front uses it)."""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["MAX_LISTED_PROBLEMS", "describe_problems"]

MAX_LISTED_PROBLEMS = 8


def describe_problems(exc: ValidationError, what: str = "invalid arguments") -> str:
    """'invalid arguments (2 problems): field: what is wrong; ...', at most `MAX_LISTED_PROBLEMS` of them,
    without pydantic's echo of each input and its documentation links."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    listed = [f"{'.'.join(str(part) for part in e['loc']) or 'arguments'}: {e['msg']}" for e in errors]
    more = len(listed) - MAX_LISTED_PROBLEMS
    shown = "; ".join(listed[:MAX_LISTED_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
    return f"{what} ({len(listed)} problem{'s' if len(listed) != 1 else ''}): {shown}"
