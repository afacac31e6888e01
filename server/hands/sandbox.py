"""The seam between the agent loop and where tools run.

The loop calls `Sandbox.execute(tool_name, tool_input)` and gets a `ToolResult`
whose content blocks are already in the Messages API's `tool_result` shape
(text, image, document). It never sees Docker, containers or the helper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import JsonValue

from server.core.tools import ToolResult

__all__ = [
    "DEFAULT_CPUS",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_PIDS_LIMIT",
    "Sandbox",
]

DEFAULT_MEMORY_MB = 2_048
DEFAULT_CPUS = 1.0
DEFAULT_PIDS_LIMIT = 512
"""Enough for a build with parallel jobs; low enough that a fork bomb stops at the limit, not the host."""


class Sandbox(Protocol):
    async def execute(self, tool_name: str, tool_input: Mapping[str, JsonValue]) -> ToolResult: ...
