"""The MCP App (SEP-1865): the `ui://` view is listed and read with its MIME type and CSP metadata, and
`get_session` and `send_message` link to it, for a client that declared the extension only: one that did not
sees the tool list and the tool results as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.types import TextResourceContents

from server.core.config import ServerConfig
from server.fronts.mcp.app import EXTENSION, MIME_TYPE, VIEW_URI
from server.fronts.mcp.server import build_server
from server.services.runtime import open_runtime

pytestmark = pytest.mark.anyio

Mode = Literal["auto", "legacy"]


@asynccontextmanager
async def host(config: ServerConfig, *, apps: bool, mode: Mode = "auto") -> AsyncIterator[Client]:
    """A client that declares the extension (`apps`) or not, over the modern protocol or the handshake."""
    extensions = [advertise(EXTENSION, {"mimeTypes": [MIME_TYPE]})] if apps else []
    async with open_runtime(config) as runtime, Client(build_server(runtime), extensions=extensions, mode=mode) as c:
        yield c


async def links(client: Client) -> dict[str, Any]:
    return {tool.name: tool.meta for tool in (await client.list_tools()).tools if tool.meta}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_host_with_the_extension_gets_the_links(config: ServerConfig, mode: Mode) -> None:
    async with host(config, apps=True, mode=mode) as client:
        assert await links(client) == {
            "get_session": {"ui": {"resourceUri": VIEW_URI}},
            "send_message": {"ui": {"resourceUri": VIEW_URI}},
        }


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_host_without_it_gets_no_links(config: ServerConfig, mode: Mode) -> None:
    async with host(config, apps=False, mode=mode) as client:
        assert await links(client) == {}


async def test_the_view_is_listed_and_reads_as_one_self_contained_mcp_app(config: ServerConfig) -> None:
    async with host(config, apps=True) as client:
        [listed] = [r for r in (await client.list_resources()).resources if str(r.uri) == VIEW_URI]
        assert listed.mime_type == MIME_TYPE
        [content] = (await client.read_resource(VIEW_URI)).contents
    assert isinstance(content, TextResourceContents)
    assert content.mime_type == MIME_TYPE
    assert content.meta == {
        "ui": {
            "csp": {"connectDomains": [], "resourceDomains": [], "frameDomains": [], "baseUriDomains": []},
            "prefersBorder": True,
        }
    }
    html = content.text
    assert html.startswith("<!doctype html>")
    assert "<script src" not in html  # an app's document has no server to fetch files from
    assert "/ui/" not in html
    assert html.count("<script>") == 1
    assert "ui/initialize" in html  # the bridge, not the REST page
    assert "sessionStorage" not in html


async def test_tool_results_are_the_same_with_the_extension_or_without(config: ServerConfig) -> None:
    async with host(config, apps=False) as plain:
        made = await plain.call_tool("create_session", {"title": "watched"})
        assert made.structured_content is not None
        session_id = made.structured_content["id"]
        before = await plain.call_tool("get_session", {"session_id": session_id})
    async with host(config, apps=True) as apps:
        after = await apps.call_tool("get_session", {"session_id": session_id})
    assert after.content == before.content
    assert after.structured_content == before.structured_content
    assert after.meta == before.meta
