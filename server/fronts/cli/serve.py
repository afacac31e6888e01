"""Starting the server on a transport, with the data dir held for this process alone."""

from __future__ import annotations

import logging
import os
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
from server.services.runtime import Runtime, open_runtime

__all__ = ["serve"]

logger = logging.getLogger(__name__)

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""What ends a stdio server cleanly. An MCP client that quits closes our stdin, waits about 2 s and then sends
SIGTERM (SIGKILL 2 s later): a shutdown still stopping idle sandboxes must not die of the SIGTERM."""

STUCK_STDIN_S = 2.0
"""After a signal, how long the serving may take to end. Past it the SDK's stdin reader is still waiting in a
thread for a line (the client never closed stdin), which no cancellation can interrupt: the sandboxes no running
session needs are stopped and the process exits at once (the store is safe: every write is a committed
transaction)."""


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
    with anyio.open_signal_receiver(*SHUTDOWN_SIGNALS) as signals:  # held until exit: a second SIGTERM waits too
        async with open_runtime(config) as runtime:
            server = build_server(runtime)
            settle_heap("start-up")
            served = anyio.Event()
            serving = anyio.CancelScope()

            async def serve() -> None:
                with serving:
                    await server.run_stdio_async()
                served.set()
                group.cancel_scope.cancel()  # the client left: stop listening for signals

            async with anyio.create_task_group() as group:
                group.start_soon(serve)
                async for signum in signals:
                    logger.info("%s: shutting down", signal.Signals(signum).name)
                    serving.cancel()
                    with anyio.move_on_after(STUCK_STDIN_S):
                        await served.wait()
                    await _exit_if_stuck(runtime, served)


async def _exit_if_stuck(runtime: Runtime, served: anyio.Event) -> None:
    """The serving did not end after a signal (see `STUCK_STDIN_S`): does what matters of a clean shutdown, exits."""
    if served.is_set():
        return
    logger.warning("stdin is still open after the signal: stopping idle sandboxes and exiting without waiting for it")
    await runtime.stop_unneeded_sandboxes()
    logging.shutdown()
    os._exit(0)


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """uvicorn shuts down gracefully on SIGTERM, then raises it again: this handler makes that second one unwind
    like Ctrl-C does, so the `with` blocks above end (`server.url` goes with the server) instead of the process
    dying mid-stack."""
    raise SystemExit(128 + signum)
