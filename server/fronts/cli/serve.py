"""Starting the server on a transport, with the data dir held for this process alone."""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Literal

import anyio

from server.core.config import ServerConfig
from server.core.errors import ConfigError
from server.core.heap import settle_heap
from server.core.listening import announce_url, local_url
from server.core.lock import hold_data_dir
from server.fronts.mcp.server import build_server
from server.services.runtime import open_runtime

__all__ = ["serve"]

logger = logging.getLogger(__name__)


def serve(config: ServerConfig, transport: Literal["stdio", "http"], host: str, port: int) -> None:
    """Runs until the client disconnects (stdio) or the process is interrupted (HTTP)."""
    problems = config.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    with hold_data_dir(config.data_dir):
        logger.info("data dir %s", config.data_dir)
        if transport == "http":
            from server.fronts.http import serve_http

            signal.signal(signal.SIGTERM, _exit_on_sigterm)
            with announce_url(config.data_dir, local_url(host, port)):  # `sessions watch` finds it there
                serve_http(config, host, port)
        else:
            anyio.run(_serve_stdio, config)


async def _serve_stdio(config: ServerConfig) -> None:
    async with open_runtime(config) as runtime:
        server = build_server(runtime)
        settle_heap("start-up")
        await server.run_stdio_async()


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """uvicorn shuts down gracefully on SIGTERM, then raises it again: this handler makes that second one unwind
    like Ctrl-C does, so the `with` blocks above end (`server.url` goes with the server) instead of the process
    dying mid-stack."""
    raise SystemExit(128 + signum)
