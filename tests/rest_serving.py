"""The HTTP server (`/mcp` and `/v1`) in this process, on a loopback port, over a runtime with test adapters.

uvicorn runs the real ASGI app in a thread of its own, so a test drives it with real clients (the `anthropic`
SDK, sync or async; an MCP client over Streamable HTTP) from its own thread and event loop."""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anthropic
import uvicorn

from server.core.config import ServerConfig
from server.fronts.http import http_app
from server.services.runtime import open_runtime

TOKEN = "test-token-" + "x" * 32


@dataclass(frozen=True)
class RestServer:
    base_url: str
    token: str
    port: int

    def client(self, **options: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.base_url, api_key=self.token, max_retries=0, **options)

    def async_client(self, **options: Any) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.base_url, api_key=self.token, max_retries=0, **options)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def rest_server(config: ServerConfig, token: str = TOKEN, **adapters: Any) -> Iterator[RestServer]:
    """Serves `http_app` over `open_runtime(config, **adapters)` until the block ends."""
    port = _free_port()
    app = http_app(config, token, "127.0.0.1", port, opener=functools.partial(open_runtime, **adapters))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="rest-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the HTTP server did not start (its log is in the test's captured stderr)")
        time.sleep(0.01)
    try:
        yield RestServer(f"http://127.0.0.1:{port}", token, port)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
