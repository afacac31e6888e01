"""Remote MCP servers from the host side, against a real Streamable HTTP MCP server that wants a bearer token."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.abc
import pytest
from pydantic import TypeAdapter
from remote_mcp_server import PIXEL_PNG, RemoteMcpServer

from server.brain.tools import mcp_tool_name, offered_tools
from server.core.agents import AgentTool, McpServer, McpToolset
from server.egress.remote_mcp import BearerLookup, BearerToken, RemoteMcpServers, RemoteTool
from vault import Secret, VaultError

pytestmark = pytest.mark.anyio

TOKEN = "remote-token-5f1e0c7a"


@pytest.fixture
def remote() -> Iterator[RemoteMcpServer]:
    with RemoteMcpServer(token=TOKEN) as server:
        yield server


@pytest.fixture
async def task_group() -> AsyncIterator[anyio.abc.TaskGroup]:
    async with anyio.create_task_group() as tg:
        yield tg


def lookup(tokens: dict[str, str]) -> BearerLookup:
    async def bearer_for(url: str) -> BearerToken | None:
        value = tokens.get(url)
        return Secret("remote", value) if value is not None else None

    return bearer_for


def server(remote: RemoteMcpServer, name: str = "docs") -> McpServer:
    return McpServer.model_validate({"name": name, "url": remote.url})


async def test_lists_and_calls_tools_with_the_bearer_token(
    remote: RemoteMcpServer, task_group: anyio.abc.TaskGroup
) -> None:
    servers = RemoteMcpServers(task_group)
    assert await servers.open([server(remote)], lookup({remote.url: TOKEN})) == []
    tools = {tool.name: tool for tool in servers.tools()}
    assert set(tools) == {"add", "echo_token", "slow", "fail", "pixel"}
    assert tools["add"].server_name == "docs"
    assert tools["add"].description == "Add two integers."
    assert tools["add"].input_schema["required"] == ["a", "b"]

    added = await servers.call("docs", "add", {"a": 2, "b": 3})
    assert (added.content, added.is_error) == ([{"type": "text", "text": "5"}], False)
    echoed = await servers.call("docs", "echo_token", {})
    assert echoed.as_text() == TOKEN
    failed = await servers.call("docs", "fail", {"message": "no such page"})
    assert failed.is_error
    assert "no such page" in failed.as_text()
    image = await servers.call("docs", "pixel", {})
    [block] = image.content
    assert block == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PIXEL_PNG).decode()},
    }
    assert all(seen.headers.get("authorization") == f"Bearer {TOKEN}" for seen in remote.seen)
    await servers.aclose()


async def test_one_connection_serves_every_call_and_every_open(
    remote: RemoteMcpServer, task_group: anyio.abc.TaskGroup
) -> None:
    servers = RemoteMcpServers(task_group)
    bearer_for = lookup({remote.url: TOKEN})
    await servers.open([server(remote)], bearer_for)
    for n in range(5):
        assert (await servers.call("docs", "add", {"a": n, "b": 1})).as_text() == str(n + 1)
    assert await servers.open([server(remote)], bearer_for) == []  # a later run: still connected, nothing new
    handshakes = remote.count("server/discover") + remote.count("initialize")
    assert handshakes == 1
    assert remote.count("tools/list") == 1
    assert remote.count("tools/call") == 5
    assert len({seen.client_port for seen in remote.seen}) == 1  # one kept-alive TCP connection, too
    await servers.aclose()
    assert not servers.connected("docs")
    assert servers.tools() == []


async def test_aclose_ends_every_connection_task(remote: RemoteMcpServer) -> None:
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            servers = RemoteMcpServers(tg)
            await servers.open([server(remote, "a"), server(remote, "b")], lookup({remote.url: TOKEN}))
            assert servers.connected("a")
            assert servers.connected("b")
            await servers.aclose()
        # The task group ended on its own: no connection task was left running.


@pytest.mark.parametrize("status", [401, 403])
async def test_a_wrong_token_is_an_authentication_failure_that_never_shows_the_token(
    status: int, task_group: anyio.abc.TaskGroup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-9c3d2b1a"
    with RemoteMcpServer(token=TOKEN, status_for_bad_token=status) as remote:
        servers = RemoteMcpServers(task_group)
        [failure] = await servers.open([server(remote)], lookup({remote.url: wrong}))
        assert failure.kind == "mcp_authentication_failed_error"
        assert failure.server_name == "docs"
        assert f"HTTP {status}" in str(failure)
        assert f"vault add VAULT --type static_bearer --match {remote.url}" in str(failure)
        assert "vault_ids" in str(failure)
        assert servers.tools() == []
        assert remote.count("tools/list") == 0
        assert {seen.headers.get("authorization") for seen in remote.seen} == {f"Bearer {wrong}"}
    assert wrong not in str(failure)
    assert wrong not in repr(failure)
    assert wrong not in caplog.text


async def test_a_credential_the_vault_cannot_read_is_an_authentication_failure_not_a_crash(
    remote: RemoteMcpServer, task_group: anyio.abc.TaskGroup
) -> None:
    async def drifted(url: str) -> BearerToken | None:
        raise VaultError("credential cred_x's secret is gone from the keyring; add it again")

    servers = RemoteMcpServers(task_group)
    [failure] = await servers.open([server(remote)], drifted)
    assert failure.kind == "mcp_authentication_failed_error"
    assert "secret is gone from the keyring; add it again" in str(failure)
    assert remote.seen == []  # nothing was sent without the credential the session asked for


async def test_no_credential_means_an_unauthenticated_attempt(
    remote: RemoteMcpServer, task_group: anyio.abc.TaskGroup
) -> None:
    servers = RemoteMcpServers(task_group)
    [failure] = await servers.open([server(remote)], lookup({}))
    assert failure.kind == "mcp_authentication_failed_error"
    assert "needs a credential" in str(failure)
    assert all("authorization" not in seen.headers for seen in remote.seen)


async def test_an_unreachable_server_is_a_connection_failure(task_group: anyio.abc.TaskGroup) -> None:
    servers = RemoteMcpServers(task_group)
    gone = McpServer.model_validate({"name": "gone", "url": "http://127.0.0.1:9/mcp"})
    with anyio.fail_after(30):
        [failure] = await servers.open([gone], lookup({}))
    assert failure.kind == "mcp_connection_failed_error"
    assert failure.server_name == "gone"
    assert "check the URL" in str(failure)


async def test_one_failing_server_does_not_keep_the_others_from_connecting(
    remote: RemoteMcpServer, task_group: anyio.abc.TaskGroup
) -> None:
    servers = RemoteMcpServers(task_group)
    gone = McpServer.model_validate({"name": "gone", "url": "http://127.0.0.1:9/mcp"})
    failures = await servers.open([gone, server(remote)], lookup({remote.url: TOKEN}))
    assert [f.server_name for f in failures] == ["gone"]
    assert {tool.server_name for tool in servers.tools()} == {"docs"}
    await servers.aclose()


async def test_a_dropped_connection_is_reopened_once_on_the_next_call(
    remote: RemoteMcpServer, task_group: anyio.abc.TaskGroup
) -> None:
    servers = RemoteMcpServers(task_group)
    await servers.open([server(remote)], lookup({remote.url: TOKEN}))
    assert (await servers.call("docs", "add", {"a": 1, "b": 1})).as_text() == "2"
    remote.stop()
    with anyio.fail_after(30), pytest.raises(Exception, match="could not connect") as raised:
        await servers.call("docs", "add", {"a": 1, "b": 2})  # dropped, reopened once, and that failed too
    assert getattr(raised.value, "kind", None) == "mcp_connection_failed_error"
    remote.start()  # same port
    assert (await servers.call("docs", "add", {"a": 1, "b": 3})).as_text() == "4"
    assert remote.count("server/discover") + remote.count("initialize") == 2  # the first connection, then one reopen
    await servers.aclose()


async def test_a_call_that_outlasts_its_deadline_is_an_error_result(
    remote: RemoteMcpServer, task_group: anyio.abc.TaskGroup
) -> None:
    servers = RemoteMcpServers(task_group, call_timeout_s=0.5)
    await servers.open([server(remote)], lookup({remote.url: TOKEN}))
    with anyio.fail_after(10):
        result = await servers.call("docs", "slow", {"seconds": 5})
    assert result.is_error
    assert "did not answer within 0.5 s" in result.as_text()
    assert (await servers.call("docs", "add", {"a": 1, "b": 1})).as_text() == "2"  # the connection survived
    await servers.aclose()


# Offering remote tools to the model -----------------------------------------------------------------------


def remote_tool(name: str, server_name: str = "docs") -> RemoteTool:
    return RemoteTool(server_name, name, f"{name} things", {"type": "object", "properties": {}})


def test_mcp_tools_ask_by_default_and_follow_their_configs() -> None:
    toolset = McpToolset.model_validate(
        {
            "type": "mcp_toolset",
            "mcp_server_name": "docs",
            "configs": [
                {"name": "search", "permission_policy": {"type": "always_allow"}},
                {"name": "delete", "enabled": False},
            ],
        }
    )
    tools = [remote_tool("search"), remote_tool("delete"), remote_tool("edit"), remote_tool("x", "other")]
    offered = {tool.tool_name: tool for tool in offered_tools([toolset], {}, tools)}
    assert set(offered) == {"search", "edit"}  # disabled and other servers' tools are left out
    assert offered["search"].permission == "allow"
    assert offered["edit"].permission == "ask"
    edit = offered["edit"]
    assert (edit.kind, edit.name, edit.server_name) == ("mcp", "mcp__docs__edit", "docs")
    assert edit.spec == {"name": "mcp__docs__edit", "description": "edit things", "input_schema": tools[2].input_schema}


def test_an_allow_list_through_default_config() -> None:
    toolset = McpToolset.model_validate(
        {
            "type": "mcp_toolset",
            "mcp_server_name": "docs",
            "default_config": {"enabled": False, "permission_policy": {"type": "always_allow"}},
            "configs": [{"name": "search", "enabled": True}],
        }
    )
    offered = offered_tools([toolset], {}, [remote_tool("search"), remote_tool("edit")])
    assert [(t.name, t.permission) for t in offered] == [("mcp__docs__search", "allow")]


def test_model_facing_names_are_valid_deterministic_and_distinct() -> None:
    valid = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
    assert mcp_tool_name("docs", "search") == "mcp__docs__search"
    odd = [("my docs", "search.v2"), ("my_docs", "search_v2"), ("d" * 40, "t" * 40), ("d" * 40, "t" * 41)]
    names = [mcp_tool_name(s, t) for s, t in odd]
    assert all(valid.match(name) for name in names)
    assert len(set(names)) == len(names)
    assert names == [mcp_tool_name(s, t) for s, t in odd]
    assert names[1] == "mcp__my_docs__search_v2"  # already valid: kept as is
    assert names[0].startswith("mcp__my_docs__search_v2_")  # sanitized, so it carries a hash
    assert len(names[2]) == 64


def test_a_name_offered_twice_is_kept_once() -> None:
    custom = {"type": "custom", "name": "mcp__docs__search", "description": "d", "input_schema": {"type": "object"}}
    toolset = {"type": "mcp_toolset", "mcp_server_name": "docs"}
    tools = TypeAdapter(list[AgentTool]).validate_python([custom, toolset])
    offered = offered_tools(tools, {}, [remote_tool("search")])
    assert [(t.name, t.kind) for t in offered] == [("mcp__docs__search", "custom")]
