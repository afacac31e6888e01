"""The live view inside MCP hosts: an MCP App (SEP-1865, the `io.modelcontextprotocol/ui` extension).

The view (`server.fronts.web.app_document`) is the `ui://` resource below, of MIME type
`text/html;profile=mcp-app`; its CSP metadata asks for nothing beyond the extension's restrictive default (no
network, no outside scripts or styles, no frames): the app reads the session only by calling this server's
tools through the host's postMessage bridge. `get_session` and `send_message` link to it with
`_meta.ui.resourceUri`, on the tool list of a client that declared the extension only: a host without it sees
the tool list and every tool result exactly as before.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import ListToolsResult

from server.fronts.mcp.registry import Registry
from server.fronts.web import app_document

__all__ = ["EXTENSION", "MIME_TYPE", "VIEW_URI", "AppLinks", "register_app_resource"]

EXTENSION = "io.modelcontextprotocol/ui"
MIME_TYPE = "text/html;profile=mcp-app"
VIEW_URI = "ui://managed-sessions/session-view"
LINKED_TOOLS = frozenset({"get_session", "send_message"})
"""The tools whose results the host shows with the view (both name the session the view follows)."""
RESOURCE_META: dict[str, Any] = {
    "ui": {
        # Empty lists: the app needs no origin at all, so the host's most restrictive policy fits it.
        "csp": {"connectDomains": [], "resourceDomains": [], "frameDomains": [], "baseUriDomains": []},
        "prefersBorder": True,
    }
}


def register_app_resource(registry: Registry) -> None:
    @registry.resource(
        VIEW_URI,
        name="session_view",
        title="Session view",
        description="A live view of one session: its conversation, tool calls, confirmations and output files.",
        mime_type=MIME_TYPE,
        meta=RESOURCE_META,
    )
    def session_view() -> str:
        return app_document()


def _declared(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether the client declared the extension with this server's MIME type."""
    capabilities = ctx.session.client_capabilities
    settings = (capabilities.extensions or {}).get(EXTENSION) if capabilities else None
    return isinstance(settings, dict) and MIME_TYPE in (settings.get("mimeTypes") or [])


class AppLinks:
    """Server middleware: on `tools/list` for a client that declared the extension, the linked tools carry
    `_meta.ui.resourceUri` (a client that did not gets the list unchanged)."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/list" or not _declared(ctx):
            return result
        link = {"ui": {"resourceUri": VIEW_URI}}
        if isinstance(result, ListToolsResult):
            tools = [_linked(t.name, t, link) for t in result.tools]
            return result.model_copy(update={"tools": tools})
        if isinstance(result, dict):  # the handler's result, serialized already: only the links are added
            return {**result, "tools": [_linked(t.get("name"), t, link) for t in result.get("tools", [])]}
        return result


def _linked(name: object, tool: Any, link: dict[str, Any]) -> Any:
    if name not in LINKED_TOOLS:
        return tool
    if isinstance(tool, dict):
        return {**tool, "_meta": {**(tool.get("_meta") or {}), **link}}
    return tool.model_copy(update={"meta": {**(tool.meta or {}), **link}})
