"""Where `sessions list` and `sessions watch` read from: a running HTTP server, or else the data dir read-only.

`SessionFeed` is the one seam; `open_feed` is the one place that picks a side. The server on this data dir
records its URL there (`core.listening`); with one running, its REST API and event stream are the source (the
live view, previews of the model's text included). Without one, the store is read read-only and polled, which
works beside a stdio server too. Items are JSON objects as the REST API shows them, whichever the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, Protocol

from server.core.config import ServerConfig
from server.core.errors import ServerError
from server.core.listening import announced_url

__all__ = ["CAUGHT_UP", "FeedError", "FeedItem", "SessionFeed", "open_feed"]

CAUGHT_UP: Final = "caught-up"
"""Yielded once by `events`, between the log as it was and what happens next."""
FeedItem = dict[str, Any] | str


class FeedError(ServerError):
    """The source cannot be read (a refused token, a server gone mid-watch, an unknown session)."""


class SessionFeed(Protocol):
    @property
    def source(self) -> str:
        """What is being read, for people ("the server at http://...", "the data dir ... (read-only)")."""
        ...

    def sessions(self, limit: int, include_archived: bool) -> list[dict[str, Any]]:
        """The newest sessions, newest first."""
        ...

    def session(self, session_id: str) -> dict[str, Any]: ...

    def events(self, session_id: str) -> Iterator[FeedItem]:
        """The session's whole log, then `CAUGHT_UP`, then each new event (and preview) as it comes; blocks."""
        ...

    def close(self) -> None: ...


def open_feed(config: ServerConfig, url: str | None = None) -> SessionFeed:
    """The HTTP server at `url`, or the one recorded in the data dir, or else the store read-only."""
    url = url or announced_url(config.data_dir)
    if url is not None:
        from server.fronts.cli.http_feed import HttpFeed

        return HttpFeed(url.rstrip("/"), _token(config))
    from server.fronts.cli.store_feed import StoreFeed

    return StoreFeed.open(config)


def _token(config: ServerConfig) -> str:
    """`MANAGED_SESSIONS_TOKEN`, else the keyring's (as `token show` prints it)."""
    if config.token:
        return config.token
    from server.services.runtime import http_token

    stored = http_token(config).stored()
    if stored is None:
        raise FeedError("no HTTP token: set MANAGED_SESSIONS_TOKEN to the server's token ('token show' prints it)")
    return stored
