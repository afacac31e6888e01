"""Starting the server on a transport, with the data dir held for this process alone."""

from __future__ import annotations

import logging
from typing import Literal

from server.core.config import ServerConfig
from server.core.errors import ConfigError
from server.core.lock import hold_data_dir
from server.fronts.mcp.server import build_server

__all__ = ["serve"]

logger = logging.getLogger(__name__)


def serve(config: ServerConfig, transport: Literal["stdio", "http"], host: str, port: int) -> None:
    """Runs until the client disconnects (stdio) or the process is interrupted (HTTP)."""
    problems = config.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    with hold_data_dir(config.data_dir):
        mcp = build_server(config)
        logger.info("data dir %s", config.data_dir)
        if transport == "http":
            from server.fronts.http import serve_http

            serve_http(mcp, config, host, port)
        else:
            mcp.run()
