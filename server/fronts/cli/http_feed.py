"""`SessionFeed` over a running server's REST API: lists, the event list for the history, then the SSE stream.

Plain `http.client`, blocking: the CLI reads one stream at a time, and an HTTP library would cost more to import
than the rest of the command. The stream resumes after the last event it gave (`?after=`), so a dropped
connection loses nothing; only a server that stays away ends the watch.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from server.fronts.cli.feeds import CAUGHT_UP, FeedError, FeedItem

__all__ = ["HttpFeed"]

REQUEST_TIMEOUT_S = 30.0
STREAM_SILENCE_S = 90.0
"""A stream quiet this long (no event, no heartbeat) is taken for dead and reopened."""
RECONNECTS = 5
RECONNECT_PAUSE_S = 1.0
PAGE = 100


class HttpFeed:
    def __init__(self, base_url: str, token: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FeedError(f"{base_url!r} is not an http(s) URL of a managed-sessions server")
        self._base = base_url
        self._parts = parts
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    @property
    def source(self) -> str:
        return f"the server at {self._base}"

    def sessions(self, limit: int, include_archived: bool) -> list[dict[str, Any]]:
        query = {"limit": min(limit, 100), "include_archived": str(include_archived).lower()}
        page = self._get_json("/v1/sessions?" + urlencode(query))
        return list(page.get("data") or [])

    def session(self, session_id: str) -> dict[str, Any]:
        return self._get_json(f"/v1/sessions/{quote(session_id, safe='')}")

    def events(self, session_id: str) -> Iterator[FeedItem]:
        path = f"/v1/sessions/{quote(session_id, safe='')}/events"
        last: str | None = None
        cursor: str | None = None
        while True:  # the history, a page at a time
            query = {"limit": PAGE, "order": "asc", **({"page": cursor} if cursor else {})}
            page = self._get_json(f"{path}?{urlencode(query)}")
            for event in page.get("data") or []:
                last = str(event.get("id"))
                yield event
            cursor = page.get("next_page")
            if not cursor or not page.get("data"):
                break
        yield CAUGHT_UP
        yield from self._stream(path + "/stream", last)

    def close(self) -> None:
        """Nothing to close: each request has its own connection."""

    def _stream(self, path: str, last: str | None) -> Iterator[FeedItem]:
        failures = 0
        while True:
            query = urlencode({"event_deltas[]": "agent.message", **({"after": last} if last else {})})
            try:
                for item in self._sse(f"{path}?{query}"):
                    failures = 0
                    if isinstance(item.get("id"), str) and "seq" in item:
                        last = item["id"]
                    yield item
                    if item.get("type") == "session.deleted":
                        return
            except (OSError, http.client.HTTPException) as exc:
                failures += 1
                if failures > RECONNECTS:
                    raise FeedError(f"lost {self.source} ({exc}); run the command again once it is back") from exc
            time.sleep(RECONNECT_PAUSE_S)

    def _sse(self, path: str) -> Iterator[dict[str, Any]]:
        """The `data:` objects of one stream connection, heartbeats left out, until it ends."""
        connection = self._connection(STREAM_SILENCE_S)
        try:
            response = self._request(connection, path, {"Accept": "text/event-stream"})
            data: list[str] = []
            for raw in response:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif not line and data:
                    item = json.loads("\n".join(data))
                    data = []
                    if isinstance(item, dict) and item.get("type") != "ping":
                        yield item
        finally:
            connection.close()

    def _get_json(self, path: str) -> dict[str, Any]:
        connection = self._connection(REQUEST_TIMEOUT_S)
        try:
            body = json.loads(self._request(connection, path, {}).read())
        except (OSError, http.client.HTTPException) as exc:
            raise FeedError(f"{self.source} does not answer ({exc}); is it running?") from exc
        finally:
            connection.close()
        if not isinstance(body, dict):
            raise FeedError(f"{self.source} answered {path} with something that is not a JSON object")
        return body

    def _connection(self, timeout_s: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        return kind(self._parts.hostname or "", self._parts.port, timeout=timeout_s)

    def _request(
        self, connection: http.client.HTTPConnection, path: str, headers: dict[str, str]
    ) -> http.client.HTTPResponse:
        connection.request("GET", self._parts.path.rstrip("/") + path, headers={**self._headers, **headers})
        response = connection.getresponse()
        if response.status >= 400:
            raise FeedError(_refusal(self.source, response.status, response.read()))
        return response


def _refusal(source: str, status: int, body: bytes) -> str:
    """The API's error message, with what to do for a refused token."""
    try:
        message = str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = body[:200].decode("utf-8", errors="replace")
    if status == 401:
        return f"{source} refused the token: set MANAGED_SESSIONS_TOKEN to the one it uses ({message})"
    return f"{source} answered {status}: {message}"
