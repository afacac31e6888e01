"""The registry builds the tools `@MCPServer.tool()` would, publishing each output type's schema shallow and
making it once."""

from __future__ import annotations

import pytest
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult
from pydantic import BaseModel

from server.fronts.mcp.registry import Registry
from server.fronts.mcp.shallow import shallow_schema
from server.fronts.mcp.tools.common import READ_ONLY
from server.fronts.mcp.tools.messages import register_message_tools
from server.fronts.mcp.tools.sessions import register_session_tools


def session_tools() -> dict[str, Tool]:
    registry = Registry()
    register_session_tools(registry)
    register_message_tools(registry)
    return {tool.name: tool for tool in registry.tools}


def test_each_tool_is_the_one_the_sdk_builds_from_the_function() -> None:
    for name, tool in session_tools().items():
        sdk = Tool.from_function(tool.fn, annotations=tool.annotations)
        assert sdk.output_schema is not None
        assert (tool.name, tool.description, tool.parameters, tool.output_schema) == (
            sdk.name,
            sdk.description,
            sdk.parameters,
            shallow_schema(sdk.output_schema),
        ), name
        assert (tool.fn_metadata.output_model, tool.fn_metadata.wrap_output, tool.context_kwarg) == (
            sdk.fn_metadata.output_model,
            sdk.fn_metadata.wrap_output,
            sdk.context_kwarg,
        ), name


def test_tools_with_one_output_type_share_one_schema() -> None:
    tools = session_tools()
    returning_a_session = ["get_session", "archive_session", "interrupt_session", "create_session"]
    # FuncMetadata copies the top level of the schema it is given; what lies below is made once and shared.
    made = {id(tools[name].output_schema["properties"]) for name in returning_a_session}  # type: ignore[index]
    assert len(made) == 1


class Page(BaseModel):
    items: list[str]


def test_a_tool_that_does_not_return_a_result_with_a_model_is_refused() -> None:
    registry = Registry()

    async def listing() -> Page:
        return Page(items=[])

    async def annotated() -> CallToolResult:
        return CallToolResult(content=[])

    for fn in (listing, annotated):
        with pytest.raises(TypeError, match="must return Annotated"):
            registry.tool(annotations=READ_ONLY)(fn)
