"""Which tools an agent offers the model, and the permission each one runs under.

MCP tools are offered as `mcp__<server>__<tool>`: the Messages API wants tool names matching
`^[a-zA-Z0-9_-]{1,64}$`, and the prefix keeps them apart from built-in and custom tools. When
the plain name would not fit that pattern (a character outside it, or more than 64 characters),
the name is its sanitized form (each other character becomes `_`) cut to 55 characters, plus
`_` and the first 8 hex digits of the SHA-256 of `<server>`, a NUL byte and `<tool>`: deterministic, so a
session's recorded tool uses rebuild to the same names, and distinct for distinct tools. A
name that still collides with one offered earlier is left out (and logged), never shadowed.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import JsonValue

from server.core.agents import AgentTool, AgentToolset, CustomTool, McpToolset
from server.core.tools import RemoteTool

__all__ = ["OfferedTool", "mcp_tool_name", "offered_tools"]

logger = logging.getLogger(__name__)

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_-]")

Permission = Literal["allow", "ask"]


@dataclass(frozen=True)
class OfferedTool:
    name: str
    """The name the model sees (for MCP tools, `mcp_tool_name(server_name, tool_name)`)."""
    kind: Literal["builtin", "custom", "mcp"]
    permission: Permission
    spec: dict[str, JsonValue]
    server_name: str | None = None
    """MCP tools: the server's name in the agent's mcp_servers."""
    tool_name: str | None = None
    """MCP tools: the tool's own (bare) name on its server."""


def mcp_tool_name(server_name: str, tool_name: str) -> str:
    """The model-facing name of a remote tool (the rule is in the module docstring)."""
    plain = f"mcp__{server_name}__{tool_name}"
    if _TOOL_NAME.match(plain):
        return plain
    digest = hashlib.sha256(f"{server_name}\0{tool_name}".encode()).hexdigest()[:8]
    return f"{_NOT_ALLOWED.sub('_', plain)[:55]}_{digest}"


def offered_tools(
    tools: Sequence[AgentTool],
    builtin_specs: Mapping[str, Mapping[str, Any]],
    remote_tools: Sequence[RemoteTool] = (),
) -> list[OfferedTool]:
    """The enabled tools, in the agent's order, with their resolved permission policy.

    `builtin_specs` are the sandbox's tool definitions; the brain knows tools only as specs.
    `remote_tools` are what the connected MCP servers listed (a server that is not connected offers none).
    """
    offered: list[OfferedTool] = []
    for tool in tools:
        if isinstance(tool, AgentToolset):
            offered.extend(_builtin(tool, builtin_specs))
        elif isinstance(tool, CustomTool):
            spec: dict[str, JsonValue] = {
                "name": tool.name,
                "description": tool.description,
                "input_schema": tool.input_schema,
            }
            offered.append(OfferedTool(tool.name, "custom", "allow", spec))
        elif isinstance(tool, McpToolset):
            offered.extend(_mcp(tool, [t for t in remote_tools if t.server_name == tool.mcp_server_name]))
    return _without_collisions(offered)


def _mcp(toolset: McpToolset, remote_tools: Sequence[RemoteTool]) -> list[OfferedTool]:
    """The server's tools the toolset enables; MCP tools ask before they run unless configured otherwise."""
    defaults = toolset.default_config
    by_name = {config.name: config for config in toolset.configs}
    offered = []
    for remote in remote_tools:
        config = by_name.get(remote.name)
        enabled = _first(config.enabled if config else None, defaults.enabled if defaults else None, True)
        policy = _first(
            config.permission_policy if config else None, defaults.permission_policy if defaults else None, None
        )
        if not enabled:
            continue
        permission: Permission = "allow" if policy is not None and policy.type == "always_allow" else "ask"
        name = mcp_tool_name(remote.server_name, remote.name)
        spec: dict[str, JsonValue] = {"name": name, "input_schema": remote.input_schema}
        if remote.description:
            spec["description"] = remote.description
        offered.append(OfferedTool(name, "mcp", permission, spec, remote.server_name, remote.name))
    return offered


def _without_collisions(offered: list[OfferedTool]) -> list[OfferedTool]:
    seen: set[str] = set()
    kept = []
    for tool in offered:
        if tool.name in seen:
            logger.warning("tool %r is offered twice; only the first is kept", tool.name)
            continue
        seen.add(tool.name)
        kept.append(tool)
    return kept


def _builtin(toolset: AgentToolset, specs: Mapping[str, Mapping[str, Any]]) -> list[OfferedTool]:
    defaults = toolset.default_config
    by_name = {config.name: config for config in toolset.configs}
    offered = []
    for name, spec in specs.items():
        config = by_name.get(name)  # type: ignore[call-overload]
        enabled = _first(config.enabled if config else None, defaults.enabled if defaults else None, True)
        policy = _first(
            config.permission_policy if config else None, defaults.permission_policy if defaults else None, None
        )
        if enabled:
            permission: Permission = "ask" if policy is not None and policy.type == "always_ask" else "allow"
            offered.append(OfferedTool(name, "builtin", permission, dict(spec)))
    return offered


def _first(*values: Any) -> Any:
    """The first value that is not None (a per-tool setting, then the toolset's default, then ours)."""
    return next((v for v in values if v is not None), None)
