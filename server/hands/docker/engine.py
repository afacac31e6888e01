"""Calls into the Docker engine, and the one place "the engine does not answer" is recognised.

The docker SDK lets a dead engine through in several shapes: `requests`' connection
errors and timeouts (which are `OSError`s, not `DockerException`s), a `DockerException`
wrapping one (`docker.from_env()`'s version check), or a `urllib3` protocol error in the
middle of a stream. `in_engine` runs a blocking SDK call in the Docker thread pool and
turns every one of those into `EngineUnreachableError`, which says what to do. An engine
that answered, even with an error (`APIError`), is not unreachable: that passes through.

Unreachable is worth telling apart because it usually passes: the engine restarts, its
socket comes back. Callers that can wait for it (the agent loop) do; the rest report it.

`requests` and `urllib3` (like `docker` in this package) are imported by the code that meets them, not with the
modules: a server answers its first request without them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from server.core.blocking import in_docker_thread
from server.core.errors import EngineUnreachableError

__all__ = ["in_engine", "is_unreachable", "unreachable_error"]

P = ParamSpec("P")
T = TypeVar("T")

MAX_REASON_CHARS = 200


def _unreachable_types() -> tuple[type[BaseException], ...]:
    import requests.exceptions
    import urllib3.exceptions

    return (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        urllib3.exceptions.ProtocolError,
        urllib3.exceptions.NewConnectionError,
        ConnectionError,  # refused, reset, broken pipe
    )


def is_unreachable(exc: BaseException) -> bool:
    """Whether `exc`, or anything it was raised from, means the engine could not be reached."""
    unreachable = _unreachable_types()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, unreachable):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def unreachable_error(exc: BaseException) -> EngineUnreachableError:
    reason = str(exc)
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[:MAX_REASON_CHARS] + "…"
    return EngineUnreachableError(
        f"the Docker engine does not answer ({reason}); start it, or point DOCKER_HOST at one that runs "
        "('managed-sessions doctor' checks it)"
    )


async def in_engine(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Runs a blocking docker SDK call off the event loop; a dead engine raises `EngineUnreachableError`."""
    try:
        return await in_docker_thread(fn, *args, **kwargs)
    except EngineUnreachableError:
        raise
    except Exception as exc:
        if is_unreachable(exc):
            raise unreachable_error(exc) from exc
        raise
