"""Which tools an agent offers the model, and the permission each one runs under."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import JsonValue

from server.models.agents import AgentTool, AgentToolset, CustomTool

__all__ = ["OfferedTool", "offered_tools"]

Permission = Literal["allow", "ask"]


@dataclass(frozen=True)
class OfferedTool:
    name: str
    kind: Literal["builtin", "custom"]
    permission: Permission
    spec: dict[str, JsonValue]


def offered_tools(tools: Sequence[AgentTool], builtin_specs: Mapping[str, Mapping[str, Any]]) -> list[OfferedTool]:
    """The enabled tools, in the agent's order, with their resolved permission policy.

    `builtin_specs` are the sandbox's tool definitions; the brain knows tools only as specs.
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
    return offered


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
