"""The top-level guard: a tool that crashes answers with a message that says what to do, never the SDK's bare
"Error executing tool X", and its traceback reaches the server's log once."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from mcp import Client
from scenario import call_error, call_ok

from server.core.errors import InvalidRequestError
from server.fronts.mcp.guard import MAX_ERROR_CHARS
from server.services.definitions import Definitions

pytestmark = pytest.mark.anyio


async def test_an_unexpected_exception_becomes_a_tool_error_that_says_where_the_details_are(
    client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash(*args: object) -> None:
        raise RuntimeError("internal detail the client must not see")

    monkeypatch.setattr(Definitions, "list_agents", crash)
    caplog.set_level(logging.INFO)
    error = await call_error(client, "list_agents", {})
    assert error.startswith("Error executing tool list_agents: the server failed unexpectedly (RuntimeError)")
    assert "traceback is in the server's log" in error
    assert "internal detail" not in error
    with_traceback = [r for r in caplog.records if r.exc_info and "internal detail" in str(r.exc_info[1])]
    assert len(with_traceback) == 1  # logged once, by the guard
    assert await call_ok(client, "list_vaults", {})  # and the server answers on


async def test_a_store_failure_nobody_anticipated_is_named_as_one(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def corrupt(*args: object) -> None:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(Definitions, "get_agent", corrupt)
    error = await call_error(client, "get_agent", {"agent_id": "agent_x"})
    assert error.startswith("Error executing tool get_agent: the store failed (DatabaseError)")


async def test_arguments_failing_the_schema_are_listed_briefly_without_echoing_the_input(client: Client) -> None:
    bad = {"name": 7, "model": "bad model!", "system": 3, "description": ["x" * 5_000], "tools": "all", "metadata": 1}
    error = await call_error(client, "create_agent", {**bad, "mcp_servers": "x" * 100_000})
    assert error.startswith("Error executing tool create_agent: invalid arguments (")
    assert "name: Input should be a valid string" in error
    assert "errors.pydantic.dev" not in error
    assert "xxxxxxxxxx" not in error  # no input is echoed
    assert len(error) <= MAX_ERROR_CHARS


async def test_a_very_long_error_keeps_its_beginning_and_its_end(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def long_refusal(*args: object) -> None:
        raise InvalidRequestError("the start " + "path/" * 2_000 + " the fix at the end")

    monkeypatch.setattr(Definitions, "list_environments", long_refusal)
    error = await call_error(client, "list_environments", {})
    assert error.startswith("Error executing tool list_environments: the start")
    assert error.endswith("the fix at the end")
    assert "chars cut" in error
    assert len(error) <= MAX_ERROR_CHARS + 50
