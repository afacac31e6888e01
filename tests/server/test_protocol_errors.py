"""Requests outside the tools, as real clients send them: an unknown prompt or resource is invalid params
(-32602) with a message that says what exists, logged without a traceback; a failing read keeps its message."""

from __future__ import annotations

import logging

import pytest
from mcp import Client, MCPError
from scenario import call_ok

pytestmark = pytest.mark.anyio


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.exc_info]


async def test_an_unknown_prompt_is_invalid_params_and_says_there_are_none(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(MCPError) as raised:
        await client.get_prompt("summarize")
    assert raised.value.error.code == -32602
    assert (
        raised.value.error.message == "unknown prompt 'summarize': this server offers no prompts; use its tools instead"
    )
    assert _tracebacks(caplog) == []


async def test_an_unknown_resource_uri_is_invalid_params_and_names_the_templates(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(MCPError) as raised:
        await client.read_resource("file:///etc/passwd")
    assert raised.value.error.code == -32602
    assert raised.value.error.message.startswith("unknown resource 'file:///etc/passwd'; the resources are session://")
    assert _tracebacks(caplog) == []


async def test_a_resource_naming_a_missing_session_keeps_the_services_message(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(MCPError) as raised:
        await client.read_resource("session://sesn_nope")
    error = await client.call_tool("get_session", {"session_id": "sesn_nope"})
    assert raised.value.error.code == -32602
    assert error.is_error
    assert f"Error executing tool get_session: {raised.value.error.message}" == error.content[0].text  # type: ignore[union-attr]
    assert _tracebacks(caplog) == []


async def test_a_server_error_reaches_the_client_as_a_tool_error_logged_without_a_traceback(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await call_ok(client, "list_agents", {})
    error = await client.call_tool("archive_agent", {"agent_id": "agent_nope"})
    assert error.is_error
    assert error.content[0].text.startswith("Error executing tool archive_agent: ")  # type: ignore[union-attr]
    assert "agent_nope" in error.content[0].text  # type: ignore[union-attr]
    assert _tracebacks(caplog) == []
    assert any("archive_agent" in record.getMessage() and record.levelno == logging.INFO for record in caplog.records)
