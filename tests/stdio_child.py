"""The server as a stdio child spoken to in raw JSON-RPC lines, so a test can kill -9 it at will and start
another on the same data dir (the MCP client library would take the kill as its own failure)."""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from processes import INITIALIZE, LineChild

__all__ = ["StdioServer"]


class StdioServer(LineChild):
    """`python -m server serve`, initialized; `call` runs one tool and returns its structured content."""

    def __init__(self, env: dict[str, str], stderr_path: Path) -> None:
        self.spawned = time.perf_counter()
        super().__init__([sys.executable, "-m", "server", "serve"], stderr_path, env=env, deadline_s=60)
        self._ids = itertools.count(2)
        self.say(json.dumps(INITIALIZE))
        assert json.loads(self.next_line())["id"] == 1
        self.initialized = time.perf_counter()  # for benchmarks: spawn to `initialize` answered
        self.say(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self._ids)
        self.say(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "method": "tools/call",
                    "params": {"name": tool, "arguments": arguments},
                }
            )
        )
        while True:
            message = json.loads(self.next_line())
            if message.get("id") == request_id:
                result: dict[str, Any] = message["result"]
                assert not result.get("isError"), result
                return dict(result["structuredContent"])

    def follow(self, session_id: str, until: Callable[[dict[str, Any]], object]) -> None:
        """Long-polls the session's log until `until(page)` holds (bounded)."""
        cursor = None
        for _ in range(200):
            page = self.call("get_events", {"session_id": session_id, "after": cursor, "limit": 200, "wait_seconds": 2})
            cursor = page["next_cursor"] or cursor
            if until(page):
                return
        raise AssertionError("the session's log never got there")

    def wait_for(self, session_id: str, event_type: str) -> dict[str, Any]:
        for _ in range(30):
            page = self.call("get_events", {"session_id": session_id, "types": [event_type], "wait_seconds": 5})
            if page["events"]:
                return dict(page["events"][-1])
        raise AssertionError(f"no {event_type}")
