"""The MCP edge: builds the server, its lifespan, and registers every tool and resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server import MCPServer

from server.core.version import __version__
from server.fronts.mcp.app import AppLinks, register_app_resource
from server.fronts.mcp.guard import GuardedMCPServer
from server.fronts.mcp.registry import Registry
from server.fronts.mcp.tool_cache import ToolCache
from server.fronts.mcp.tools.agents import register_agent_tools
from server.fronts.mcp.tools.environments import register_environment_tools
from server.fronts.mcp.tools.files import register_file_tools
from server.fronts.mcp.tools.messages import register_message_tools
from server.fronts.mcp.tools.outputs import register_output_tools
from server.fronts.mcp.tools.sessions import register_session_tools
from server.fronts.mcp.tools.skills import register_skill_tools
from server.fronts.mcp.tools.vaults import register_vault_tools
from server.services.runtime import Runtime

__all__ = ["build_server"]

INSTRUCTIONS = """\
Runs long-lived agent sessions whose tools execute in Docker sandboxes.
Define agents (model, system prompt, tools) and environments (image, packages, network) once;
create_session starts a session from them, get_events reads what happened.
Every call returns the object as structured content; errors say what to fix."""


def build_server(runtime: Runtime) -> MCPServer[Runtime]:
    """The MCP front over an open runtime (`services.runtime.open_runtime`): its tools call the runtime's services."""

    @asynccontextmanager
    async def lifespan(_server: MCPServer[Runtime]) -> AsyncIterator[Runtime]:
        yield runtime

    registry = Registry(ToolCache(runtime.config.tool_cache_path))  # schemas made once per code version
    register_agent_tools(registry)
    register_environment_tools(registry)
    register_session_tools(registry)
    register_output_tools(registry)
    register_file_tools(registry)
    register_message_tools(registry)
    register_vault_tools(registry)
    register_app_resource(registry)
    register_skill_tools(registry)
    mcp = GuardedMCPServer[Runtime](
        "managed-sessions",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="INFO",
        tools=registry.tools,
        middleware=[AppLinks()],
    )
    mcp.on_answer = runtime.start_up.answered  # the runtime's background work waits for the first answer
    registry.add_resources_to(mcp)
    registry.save_cache()
    return mcp
