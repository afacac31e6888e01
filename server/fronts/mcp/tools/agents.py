"""MCP tools for agents: create, update (a new version), get, list, archive."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult
from pydantic import Field, StringConstraints

from server.core.agents import (
    MAX_DESCRIPTION_CHARS,
    MAX_SYSTEM_CHARS,
    Agent,
    AgentTool,
    McpServer,
    ModelConfig,
    ModelId,
    SkillRef,
)
from server.core.common import PLAIN_TEXT, MetadataPatch
from server.core.ids import AgentId
from server.fronts.mcp.registry import Registry
from server.fronts.mcp.tools.common import (
    DESTRUCTIVE,
    READ_ONLY,
    WRITE,
    Ctx,
    Cursor,
    IncludeArchived,
    Limit,
    Version,
    reply,
    runtime,
)
from server.services.definitions import AgentChanges, AgentList

__all__ = ["register_agent_tools"]

NameText = Annotated[str, StringConstraints(min_length=1, max_length=256), PLAIN_TEXT]
Name = Annotated[NameText | None, Field(default=None, description="Display name.")]
Model = Annotated[
    ModelId | ModelConfig | None,
    Field(
        default=None,
        description="Model id such as 'claude-sonnet-5-5', 'openai/gpt-4o-mini' or '<endpoint>/<model>' (an endpoint "
        "the server's providers file declares), or {id}. Default: the server's model.",
    ),
]
System = Annotated[
    str | None,
    Field(default=None, max_length=MAX_SYSTEM_CHARS, description="System prompt; on update, '' clears it."),
]
Description = Annotated[
    Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_CHARS), PLAIN_TEXT] | None, Field(default=None)
]
Tools = Annotated[
    list[AgentTool] | None,
    Field(
        default=None,
        description=(
            "Tools: {type:'agent_toolset_20260401', default_config?, configs?:[{name, enabled?, permission_policy?}]}"
            " for the built-in sandbox tools (bash, read, write, edit, glob, grep, web_fetch); {type:'custom', name,"
            " description, input_schema} for tools you answer with submit_tool_result; {type:'mcp_toolset',"
            " mcp_server_name}. Omitted on create: the full built-in toolset. [] means no tools."
        ),
    ),
]
McpServers = Annotated[
    list[McpServer] | None,
    Field(default=None, description="Remote MCP servers [{type:'url', name, url}], each used by an mcp_toolset."),
]
Metadata = Annotated[MetadataPatch | None, Field(default=None)]
Skills = Annotated[
    list[SkillRef] | None,
    Field(
        default=None,
        description="Skills the agent may use, at most 20: [{type:'custom', skill_id, version?}] (list_skills); "
        "without a version a session pins the latest. Needs the built-in read tool. On update, [] clears them.",
    ),
]


def register_agent_tools(mcp: Registry) -> None:
    @mcp.tool(annotations=WRITE)
    async def create_agent(
        ctx: Ctx,
        name: Annotated[NameText, Field(description="Display name.")],
        model: Model = None,
        system: System = None,
        description: Description = None,
        tools: Tools = None,
        mcp_servers: McpServers = None,
        metadata: Metadata = None,
        skills: Skills = None,
    ) -> Annotated[CallToolResult, Agent]:
        """Create a reusable agent definition (model, system prompt, tools) at version 1.

        Sessions created with its agent_id run it; each session pins the version it started with."""
        changes = AgentChanges(
            name=name,
            model=model,
            system=system,
            description=description,
            tools=tools,
            mcp_servers=mcp_servers,
            metadata=metadata,
            skills=skills,
        )
        agent = await runtime(ctx).definitions.create_agent(changes)
        return reply(agent, f"Created agent {agent.id} ({agent.name!r}) at version 1.")

    @mcp.tool(annotations=WRITE)
    async def update_agent(
        ctx: Ctx,
        agent_id: AgentId,
        version: Annotated[
            Version | None,
            Field(default=None, description="The version you are editing; a mismatch is refused (no lost update)."),
        ] = None,
        name: Name = None,
        model: Model = None,
        system: System = None,
        description: Description = None,
        tools: Tools = None,
        mcp_servers: McpServers = None,
        metadata: Metadata = None,
        skills: Skills = None,
    ) -> Annotated[CallToolResult, Agent]:
        """Change an agent: omitted fields are kept, tools and mcp_servers are replaced whole.

        Makes a new immutable version (unchanged input makes none); running sessions keep theirs."""
        changes = AgentChanges(
            name=name,
            model=model,
            system=system,
            description=description,
            tools=tools,
            mcp_servers=mcp_servers,
            metadata=metadata,
            skills=skills,
        )
        agent = await runtime(ctx).definitions.update_agent(agent_id, version, changes)
        return reply(agent, f"Agent {agent.id} is at version {agent.version}.")

    @mcp.tool(annotations=READ_ONLY)
    async def get_agent(
        ctx: Ctx,
        agent_id: AgentId,
        version: Annotated[Version | None, Field(default=None, description="A past version; default latest.")] = None,
    ) -> Annotated[CallToolResult, Agent]:
        """Get an agent, at its latest version or a given one."""
        agent = await runtime(ctx).definitions.get_agent(agent_id, version)
        return reply(agent, f"Agent {agent.id} ({agent.name!r}) version {agent.version}.")

    @mcp.tool(annotations=READ_ONLY)
    async def list_agents(
        ctx: Ctx, limit: Limit = 20, cursor: Cursor = None, include_archived: IncludeArchived = False
    ) -> Annotated[CallToolResult, AgentList]:
        """List agents (latest versions), newest first."""
        page = await runtime(ctx).definitions.list_agents(limit, cursor, include_archived)
        more = "; more with next_cursor" if page.next_cursor else ""
        return reply(page, f"{len(page.agents)} agent(s){more}.")

    @mcp.tool(annotations=DESTRUCTIVE)
    async def archive_agent(ctx: Ctx, agent_id: AgentId) -> Annotated[CallToolResult, Agent]:
        """Archive an agent for good: new sessions cannot use it; existing sessions keep running."""
        agent = await runtime(ctx).definitions.archive_agent(agent_id)
        return reply(agent, f"Archived agent {agent.id}.")
