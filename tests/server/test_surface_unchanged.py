"""The MCP surface clients see (tool names, descriptions, input and output schemas, annotations, resource
templates) is a public contract: reshaping the code must not change a byte of it.

`golden/mcp_surface.json` was written from the server as it was before the services/ports/adapters move. After a
deliberate change to the surface, rewrite it with `MANAGED_SESSIONS_WRITE_GOLDEN=1` and review the diff."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

pytestmark = pytest.mark.anyio

GOLDEN = Path(__file__).parent / "golden" / "mcp_surface.json"


async def _surface(client: Client) -> dict[str, Any]:
    tools = await client.list_tools()
    templates = await client.list_resource_templates()
    return {
        "tools": [tool.model_dump(mode="json", exclude_none=True) for tool in tools.tools],
        "resource_templates": [t.model_dump(mode="json", exclude_none=True) for t in templates.resource_templates],
    }


async def test_the_mcp_surface_is_the_golden_one(client: Client) -> None:
    surface = await _surface(client)
    if os.environ.get("MANAGED_SESSIONS_WRITE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(surface, indent=1, sort_keys=True) + "\n")
    assert surface == json.loads(GOLDEN.read_text())
