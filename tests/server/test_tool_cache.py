"""The tool list's schemas kept between starts (`server/fronts/mcp/tool_cache.py`): a start that reads them
publishes, validates and answers exactly like one that made them, and a cache that is damaged, stale or cannot be
written only costs the time it was meant to save."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver.tools import Tool
from serving import connected

from server.core.config import ServerConfig
from server.fronts.mcp.registry import Registry
from server.fronts.mcp.tool_cache import ToolCache, fingerprint
from server.fronts.mcp.tools.agents import register_agent_tools
from server.fronts.mcp.tools.sessions import register_session_tools

pytestmark = pytest.mark.anyio

GOLDEN = Path(__file__).parent / "golden" / "mcp_surface.json"


def built(path: Path) -> tuple[list[Tool], ToolCache]:
    cache = ToolCache(path)
    registry = Registry(cache)
    register_agent_tools(registry)
    register_session_tools(registry)
    registry.save_cache()
    return registry.tools, cache


def published(tool: Tool) -> tuple[Any, ...]:
    return (tool.name, tool.description, tool.parameters, tool.output_schema, tool.annotations, tool.context_kwarg,
            tool.is_async)  # fmt: skip


async def tools_of(client: Client) -> list[dict[str, Any]]:
    return [tool.model_dump(mode="json", exclude_none=True) for tool in (await client.list_tools()).tools]


def test_a_second_build_reads_every_tool_from_the_cache_and_publishes_the_same(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "mcp-tools.json"
    made, first = built(path)
    assert not first.complete
    assert path.is_file()
    read, second = built(path)
    assert second.complete  # every tool came from the file, and nothing was rewritten
    assert [published(tool) for tool in read] == [published(tool) for tool in made]
    assert all(type(tool.fn_metadata).__name__ == "_DeferredMetadata" for tool in read)


async def test_a_server_built_from_the_cache_has_the_golden_surface_and_answers_like_a_fresh_one(
    config: ServerConfig,
) -> None:
    outcomes: list[tuple[list[dict[str, Any]], list[str]]] = []
    for _ in range(2):  # the first start makes the schemas, the second reads them
        async with connected(config) as client:
            tools = await tools_of(client)
            answers = []
            for name, arguments in (
                ("get_session", {}),
                ("get_session", {"session_id": 7}),
                ("list_sessions", {"limit": "many"}),
                ("create_agent", {"name": "a", "model": {"id": "m"}, "tools": [{"type": "nonsense"}]}),
            ):
                result = await client.call_tool(name, arguments)
                assert result.is_error, (name, arguments)
                answers.append(result.content[0].text)  # type: ignore[union-attr]
            created = await client.call_tool("create_agent", {"name": "cached", "model": "claude-test-model"})
            assert not created.is_error, created.content
            assert created.structured_content is not None
            assert created.structured_content["name"] == "cached"
            listed = await client.call_tool("list_agents", {})
            assert not listed.is_error, listed.content
            answers.append(str(sorted(agent["name"] for agent in listed.structured_content["agents"])))  # type: ignore[index]
        outcomes.append((tools, answers))
        assert config.tool_cache_path.is_file()
    (fresh_tools, fresh_answers), (cached_tools, cached_answers) = outcomes
    assert cached_tools == fresh_tools
    assert fresh_tools == json.loads(GOLDEN.read_text())["tools"]
    assert cached_answers[:4] == fresh_answers[:4]
    assert cached_answers[4] == str(["cached", "cached"])


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xff not json",
        b"[]",
        json.dumps({"format": 1, "fingerprint": "stale", "tools": {}}).encode(),
        None,  # the right fingerprint, entries of the wrong shape
    ],
)
def test_a_damaged_or_stale_cache_is_ignored_and_rewritten(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "mcp-tools.json"
    made, _ = built(tmp_path / "reference.json")
    if content is None:
        entry = {"parameters": "not a schema", "output_schema": {}, "context_kwarg": 3}
        content = json.dumps({"format": 1, "fingerprint": fingerprint(), "tools": {"get_session": entry}}).encode()
    path.write_bytes(content)
    rebuilt, cache = built(path)
    assert not cache.complete
    assert [published(tool) for tool in rebuilt] == [published(tool) for tool in made]
    assert built(path)[1].complete  # the rewritten file serves the next build whole


def test_a_cache_that_cannot_be_written_costs_nothing_but_time(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    made, _ = built(tmp_path / "reference.json")
    tools, cache = built(tmp_path / "cache" / "mcp-tools.json")
    assert not cache.complete
    assert [published(tool) for tool in tools] == [published(tool) for tool in made]


def test_the_fingerprint_follows_a_change_to_any_source_file_of_the_packages(tmp_path: Path) -> None:
    package = tmp_path / "package"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    source = package / "sub" / "tools.py"
    source.write_text("X = 1\n")
    before = fingerprint([package])
    assert fingerprint([package]) == before
    (package / "sub" / "__pycache__").mkdir()
    (package / "sub" / "__pycache__" / "tools.cpython-311.pyc").write_bytes(b"compiled")
    assert fingerprint([package]) == before  # bytecode is not source
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 1_000_000))
    touched = fingerprint([package])
    assert touched != before
    (package / "sub" / "new.py").write_text("")
    assert fingerprint([package]) != touched
    assert fingerprint() != fingerprint([package])  # the default covers this server's own packages
