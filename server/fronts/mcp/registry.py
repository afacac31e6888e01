"""What the tool modules register on: the SDK's tools, each publishing a shallow output schema made once per type.

`@MCPServer.tool()` derives a tool's output schema from its return annotation at every registration, and
pydantic does not cache it: Session's 19 KB schema was made for six tools, Agent's and Environment's for four
each, about 75 ms of a stdio start (issue 14). Here each tool is still built by the SDK's `Tool.from_function`
(name check, context parameter, argument model and input schema), as an unstructured tool, and then given a
`FuncMetadata` with the output model and a published schema: the SDK's own schema for the type, made once and
cut to its top level (`shallow.py`, which says why). The SDK keeps validating each result against the full
model. The tools go to the server's constructor (`MCPServer(tools=...)`); resources are kept and registered on
the server once it exists. `tests/server/test_surface_unchanged.py` guards the published surface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar, get_args, get_origin, get_type_hints

from mcp.server import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel

from server.fronts.mcp.shallow import shallow_schema

__all__ = ["Registry"]

Fn = TypeVar("Fn", bound=Callable[..., Any])


class Registry:
    """Collects tools (built at once) and resources (registered by `add_resources_to`), in declaration order."""

    def __init__(self) -> None:
        self.tools: list[Tool] = []
        self._resources: list[tuple[Callable[..., Any], str, dict[str, Any]]] = []
        self._schemas: dict[type[BaseModel], dict[str, Any]] = {}

    def tool(self, *, annotations: ToolAnnotations) -> Callable[[Fn], Fn]:
        """Like `MCPServer.tool`, for a function returning `Annotated[CallToolResult, <a pydantic model>]`."""

        def register(fn: Fn) -> Fn:
            self.tools.append(self._build(fn, annotations))
            return fn

        return register

    def resource(self, uri: str, **options: Any) -> Callable[[Fn], Fn]:
        """Like `MCPServer.resource`; the registration happens in `add_resources_to`."""

        def register(fn: Fn) -> Fn:
            self._resources.append((fn, uri, options))
            return fn

        return register

    def add_resources_to(self, server: MCPServer[Any]) -> None:
        for fn, uri, options in self._resources:
            server.resource(uri, **options)(fn)

    def _build(self, fn: Callable[..., Any], annotations: ToolAnnotations) -> Tool:
        tool = Tool.from_function(fn, annotations=annotations, structured_output=False)
        output = _output_model(fn)
        metadata = FuncMetadata(
            arg_model=tool.fn_metadata.arg_model, output_model=output, output_schema=self._published(output)
        )
        return tool.model_copy(update={"fn_metadata": metadata})

    def _published(self, output: type[BaseModel]) -> dict[str, Any]:
        """The shallow output schema for `output`, cut from the full one the SDK makes, once per type."""
        if output not in self._schemas:
            full = FuncMetadata(arg_model=ArgModelBase, output_model=output).output_schema
            if full is None:  # the SDK makes one for every model, or raises
                raise TypeError(f"no output schema for {output.__name__}")
            self._schemas[output] = shallow_schema(full)
        return self._schemas[output]


def _output_model(fn: Callable[..., Any]) -> type[BaseModel]:
    returns = get_type_hints(fn, include_extras=True).get("return")
    parts = get_args(returns) if get_origin(returns) is Annotated else ()
    if (
        len(parts) == 2
        and parts[0] is CallToolResult
        and isinstance(parts[1], type)
        and issubclass(parts[1], BaseModel)
    ):
        return parts[1]
    raise TypeError(f"tool {fn.__name__} must return Annotated[CallToolResult, <a pydantic model>], not {returns}")
