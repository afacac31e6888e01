"""Agents: reusable, versioned definitions of a model, a system prompt and tools.

The tool shapes mirror the Managed Agents API: the built-in toolset
`agent_toolset_20260401` (per-tool `enabled` and `permission_policy`),
`custom` tools answered by the client, and `mcp_toolset`s that expose the
tools of a remote MCP server named in `mcp_servers`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, HttpUrl, JsonValue, StringConstraints, model_validator

from server.core.common import Strict

__all__ = [
    "BUILTIN_TOOL_NAMES",
    "MAX_VERSION",
    "Agent",
    "AgentSnapshot",
    "AgentTool",
    "AgentToolset",
    "CustomTool",
    "McpServer",
    "McpToolset",
    "ModelConfig",
    "SkillRef",
    "builtin_tool_enabled",
    "check_agent_definition",
    "check_skill_refs",
]

MAX_NAME_CHARS = 256
MAX_VERSION = 2**31 - 1
MAX_SYSTEM_CHARS = 100_000
MAX_DESCRIPTION_CHARS = 2_048
MAX_TOOLS = 128
MAX_MCP_SERVERS = 20
MAX_SKILLS = 20

BuiltinToolName = Literal["bash", "read", "write", "edit", "glob", "grep", "web_fetch"]
BUILTIN_TOOL_NAMES: tuple[BuiltinToolName, ...] = ("bash", "read", "write", "edit", "glob", "grep", "web_fetch")

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
SystemPrompt = Annotated[str, StringConstraints(max_length=MAX_SYSTEM_CHARS)]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_CHARS)]
ModelId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")]


class ModelConfig(Strict):
    """The model that runs the agent, as an object so options can join it later."""

    id: ModelId = Field(
        description="Model id: 'claude-sonnet-5-5' (Anthropic), 'openai/gpt-4o-mini', or '<endpoint>/<model>'."
    )


class AlwaysAllow(Strict):
    type: Literal["always_allow"] = "always_allow"


class AlwaysAsk(Strict):
    type: Literal["always_ask"] = "always_ask"


PermissionPolicy = Annotated[AlwaysAllow | AlwaysAsk, Field(discriminator="type")]


class ToolDefaults(Strict):
    """Applies to every tool of the toolset that has no entry of its own in `configs`."""

    enabled: bool | None = None
    permission_policy: PermissionPolicy | None = None


class BuiltinToolConfig(Strict):
    name: BuiltinToolName
    enabled: bool | None = None
    permission_policy: PermissionPolicy | None = Field(
        default=None, description="always_allow runs the tool; always_ask waits for confirm_tool_use."
    )


def _unique_names(configs: list[BuiltinToolConfig]) -> list[BuiltinToolConfig]:
    names = [c.name for c in configs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"each tool may appear once in configs; repeated: {duplicates}")
    return configs


class AgentToolset(Strict):
    """The built-in tools, which run in the session's sandbox."""

    type: Literal["agent_toolset_20260401"]
    default_config: ToolDefaults | None = None
    configs: Annotated[list[BuiltinToolConfig], AfterValidator(_unique_names)] = Field(default_factory=list)


class CustomTool(Strict):
    """A tool the client answers with submit_tool_result."""

    type: Literal["custom"]
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
    description: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
    input_schema: dict[str, JsonValue] = Field(description="A JSON Schema whose type is 'object'.")

    @model_validator(mode="after")
    def _schema_is_object(self) -> CustomTool:
        if self.input_schema.get("type") != "object":
            raise ValueError(f"custom tool {self.name!r}: input_schema must have type 'object'")
        return self


class McpToolConfig(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    enabled: bool | None = None
    permission_policy: PermissionPolicy | None = None


class McpToolset(Strict):
    """The tools of one remote MCP server; they default to always_ask."""

    type: Literal["mcp_toolset"]
    mcp_server_name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    default_config: ToolDefaults | None = None
    configs: list[McpToolConfig] = Field(default_factory=list)


AgentTool = Annotated[AgentToolset | CustomTool | McpToolset, Field(discriminator="type")]


class McpServer(Strict):
    """A remote MCP server reached over Streamable HTTP; credentials come from a vault."""

    type: Literal["url"] = "url"
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    url: HttpUrl

    @property
    def host_entry(self) -> str:
        """Its host as an `allowed_hosts` entry: `host`, with `:port` unless the port is 80 or 443."""
        host = self.url.host or ""
        return host if self.url.port in (None, 80, 443) else f"{host}:{self.url.port}"


class SkillRef(Strict):
    """A skill the agent may use. Without a version, a session pins the latest one when it is created."""

    type: Literal["custom"] = Field(description="'custom': a skill of this server (list_skills).")
    skill_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The skill's id (skill_...); its name is taken too, and stored as the id."
    )
    version: Annotated[int, Field(ge=1, le=MAX_VERSION)] | Literal["latest"] | None = Field(
        default=None, description="A version to pin; null or 'latest': the latest when a session starts."
    )


def builtin_tool_enabled(tools: list[AgentTool], name: BuiltinToolName) -> bool:
    """Whether the agent's built-in toolset offers `name` (its own config, else the toolset's default, else on)."""
    for tool in tools:
        if isinstance(tool, AgentToolset):
            config = next((c for c in tool.configs if c.name == name), None)
            if config is not None and config.enabled is not None:
                return config.enabled
            default = tool.default_config.enabled if tool.default_config else None
            return default is not False
    return False


def check_skill_refs(tools: list[AgentTool], skills: list[SkillRef]) -> None:
    """Checks the agent's skills against its tools; raises `ValueError` naming the fix."""
    if not skills:
        return
    if len(skills) > MAX_SKILLS:
        raise ValueError(f"an agent has at most {MAX_SKILLS} skills, got {len(skills)}")
    ids = [s.skill_id for s in skills]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"list each skill once; repeated: {repeated}")
    if not builtin_tool_enabled(tools, "read"):
        raise ValueError(
            "skills need the built-in `read` tool (the model reads a skill's SKILL.md with it), which this agent's "
            "tools disable or lack: enable `read` in agent_toolset_20260401, or remove the skills"
        )


def check_agent_definition(tools: list[AgentTool], mcp_servers: list[McpServer]) -> None:
    """Checks the rules that span fields; raises `ValueError` naming the fix."""
    if len(tools) > MAX_TOOLS:
        raise ValueError(f"an agent has at most {MAX_TOOLS} tools, got {len(tools)}")
    if len(mcp_servers) > MAX_MCP_SERVERS:
        raise ValueError(f"an agent has at most {MAX_MCP_SERVERS} mcp_servers, got {len(mcp_servers)}")
    if sum(isinstance(t, AgentToolset) for t in tools) > 1:
        raise ValueError("list agent_toolset_20260401 once; configure tools through its configs")
    custom = [t.name for t in tools if isinstance(t, CustomTool)]
    clashes = sorted({n for n in custom if custom.count(n) > 1 or n in BUILTIN_TOOL_NAMES})
    if clashes:
        raise ValueError(f"custom tool names must be unique and not a built-in tool's name: {clashes}")
    server_names = [s.name for s in mcp_servers]
    if len(set(server_names)) != len(server_names):
        raise ValueError("mcp_servers names must be unique")
    referenced = [t.mcp_server_name for t in tools if isinstance(t, McpToolset)]
    unknown = sorted(set(referenced) - set(server_names))
    if unknown:
        raise ValueError(f"mcp_toolset names servers missing from mcp_servers: {unknown}")
    unused = sorted(set(server_names) - set(referenced))
    if unused:
        raise ValueError(f"each MCP server needs an mcp_toolset that references it; add one for: {unused}")


class AgentSnapshot(BaseModel):
    """The agent definition a session runs: pinned at creation, never changed after."""

    type: Literal["agent"] = "agent"
    id: str | None = Field(description="The agent's id, or null for an inline agent.")
    version: int | None
    name: str
    description: str | None = None
    model: ModelConfig
    system: str | None = None
    tools: list[AgentTool]
    mcp_servers: list[McpServer] = Field(default_factory=list)
    skills: list[SkillRef] = Field(
        default_factory=list, description="On an agent, as given; on a session, each pinned to a version."
    )


class Agent(AgentSnapshot):
    """One immutable version of an agent."""

    id: str
    version: int
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: str
    updated_at: str
    archived_at: str | None = None


FULL_TOOLSET: list[AgentTool] = [AgentToolset(type="agent_toolset_20260401")]
"""The tools an inline agent gets: every built-in tool, always allowed."""
