"""What the tool modules register on: the SDK's tools, each publishing a shallow output schema made once per type.

`@MCPServer.tool()` derives a tool's output schema from its return annotation at every registration, and
pydantic does not cache it: Session's 19 KB schema was made for six tools, Agent's and Environment's for four
each, about 75 ms of a stdio start (issue 14). Here each tool is still built by the SDK's `Tool.from_function`
(name check, context parameter, argument model and input schema), as an unstructured tool, and then given a
`FuncMetadata` with the output model and a published schema: the SDK's own schema for the type, made once and
cut to its top level (`shallow.py`, which says why). The SDK keeps validating each result against the full
model. The tools go to the server's constructor (`MCPServer(tools=...)`); resources are kept and registered on
the server once it exists. `tests/server/test_surface_unchanged.py` guards the published surface.

With a `ToolCache` (`tool_cache.py`), a tool whose schemas it holds is built without making them: the SDK's
`Tool` gets the cached input and output schemas and a `_DeferredMetadata`, which makes the argument and output
models from the function on the tool's first call (the SDK's `Tool.run` validates the arguments before anything
else, and `FuncMetadata` reads its fields live). A cached tool and a made one publish, validate and answer alike
(`tests/server/test_tool_cache.py`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, get_args, get_origin, get_type_hints

from mcp.server import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata, func_metadata
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, PrivateAttr

from server.fronts.mcp.shallow import shallow_schema
from server.fronts.mcp.tool_cache import CachedTool, ToolCache

__all__ = ["Registry"]

Fn = TypeVar("Fn", bound=Callable[..., Any])


class Registry:
    """Collects tools (built at once) and resources (registered by `add_resources_to`), in declaration order."""

    def __init__(self, cache: ToolCache | None = None) -> None:
        self.tools: list[Tool] = []
        self._cache = cache
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

    def save_cache(self) -> None:
        """Keeps the schemas made this time for the next start (see `tool_cache.py`)."""
        if self._cache is not None:
            self._cache.save()

    def _build(self, fn: Callable[..., Any], annotations: ToolAnnotations) -> Tool:
        cached = self._cache.get(fn.__name__) if self._cache is not None else None
        if cached is not None:
            return _from_cache(fn, annotations, cached)
        tool = Tool.from_function(fn, annotations=annotations, structured_output=False)
        output = _output_model(fn)
        metadata = FuncMetadata(
            arg_model=tool.fn_metadata.arg_model, output_model=output, output_schema=self._published(output)
        )
        if self._cache is not None and not tool.resolved_params:
            self._cache.put(tool.name, CachedTool(tool.parameters, self._published(output), tool.context_kwarg))
        return tool.model_copy(update={"fn_metadata": metadata})

    def _published(self, output: type[BaseModel]) -> dict[str, Any]:
        """The shallow output schema for `output`, cut from the full one the SDK makes, once per type."""
        if output not in self._schemas:
            full = FuncMetadata(arg_model=ArgModelBase, output_model=output).output_schema
            if full is None:  # the SDK makes one for every model, or raises
                raise TypeError(f"no output schema for {output.__name__}")
            self._schemas[output] = shallow_schema(full)
        return self._schemas[output]


class _DeferredMetadata(FuncMetadata):
    """A cached tool's metadata: its argument and output models are made from the function on the first call."""

    _fn: Callable[..., Any] | None = PrivateAttr(default=None)
    _context_kwarg: str | None = PrivateAttr(default=None)

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        if self._fn is not None:  # the first call: made once, and only then marked made (a failure is raised again)
            skip = [self._context_kwarg] if self._context_kwarg is not None else []
            arguments = func_metadata(self._fn, skip_names=skip, structured_output=False).arg_model
            self.output_model = _output_model(self._fn)
            self.arg_model, self._fn = arguments, None
        return super().validate_arguments(arguments_to_validate)


def _from_cache(fn: Callable[..., Any], annotations: ToolAnnotations, cached: CachedTool) -> Tool:
    """The SDK's `Tool` for `fn`, as `Tool.from_function` would make it, with the schemas from the cache."""
    metadata = _DeferredMetadata(arg_model=ArgModelBase, output_schema=cached.output_schema)
    metadata._fn = fn
    metadata._context_kwarg = cached.context_kwarg
    return Tool(
        fn=fn,
        name=fn.__name__,
        description=fn.__doc__ or "",
        parameters=cached.parameters,
        fn_metadata=metadata,
        is_async=inspect.iscoroutinefunction(fn),
        context_kwarg=cached.context_kwarg,
        annotations=annotations,
    )


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
