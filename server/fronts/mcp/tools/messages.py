"""MCP tools that talk to a running session: messages, interrupts, confirmations, custom tool results."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult
from pydantic import Field, StrictBool, StrictFloat

from server.core.ids import EventId, SessionId
from server.core.sessions import Session
from server.fronts.mcp.registry import Registry
from server.fronts.mcp.tools.common import WRITE, Ctx, reply, runtime
from server.services.messages import MAX_MESSAGE_CHARS, MessageOutcome

__all__ = ["register_message_tools"]

MAX_WAIT_S = 55


def _summary(outcome: MessageOutcome) -> str:
    if outcome.status == "idle" and outcome.stop_reason is not None:
        if outcome.stop_reason.type == "requires_action":
            return f"Session waits for you: {outcome.stop_reason.event_ids} (confirm_tool_use / submit_tool_result)."
        return f"Session is idle ({outcome.stop_reason.type})." + (f"\n{outcome.reply}" if outcome.reply else "")
    return f"Session is {outcome.status}; follow it with get_events after next_cursor."


def register_message_tools(mcp: Registry) -> None:
    @mcp.tool(annotations=WRITE)
    async def send_message(
        ctx: Ctx,
        session_id: SessionId,
        text: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="The message.")],
        wait_seconds: Annotated[
            StrictFloat,
            Field(ge=0, le=MAX_WAIT_S, description="Wait up to this long for the session to go idle (0-55)."),
        ] = 25,
    ) -> Annotated[CallToolResult, MessageOutcome]:
        """Send the session a message; it is queued if the session is busy. Returns when the session goes idle
        or wait_seconds pass: status, stop_reason, the agent's final reply when idle, and the events so far.

        A stop_reason of requires_action lists event ids to answer with confirm_tool_use or submit_tool_result.
        Long jobs: call with wait_seconds=0 and follow get_events (wait_seconds there long-polls)."""

        async def progress(done: float, message: str) -> None:
            await ctx.report_progress(done, None, message)

        outcome = await runtime(ctx).inbox.send_message(session_id, text, wait_seconds, progress)
        return reply(outcome, _summary(outcome))

    @mcp.tool(annotations=WRITE)
    async def interrupt_session(ctx: Ctx, session_id: SessionId) -> Annotated[CallToolResult, Session]:
        """Stop what the session is doing (the model's answer or the running tool) and make it idle."""
        session = await runtime(ctx).inbox.interrupt(session_id)
        return reply(session, f"Session {session.id} is {session.status}.")

    @mcp.tool(annotations=WRITE)
    async def confirm_tool_use(
        ctx: Ctx,
        session_id: SessionId,
        tool_use_id: EventId,
        allow: Annotated[StrictBool, Field(description="true runs the tool; false tells the model it was denied.")],
        deny_message: Annotated[
            str | None, Field(default=None, max_length=10_000, description="What the model is told on deny.")
        ] = None,
    ) -> Annotated[CallToolResult, Session]:
        """Allow or deny a tool use that waits for confirmation (evaluated_permission 'ask')."""
        session = await runtime(ctx).inbox.confirm(session_id, tool_use_id, allow, deny_message)
        return reply(session, f"Session {session.id} is {session.status}.")

    @mcp.tool(annotations=WRITE)
    async def submit_tool_result(
        ctx: Ctx,
        session_id: SessionId,
        tool_use_id: EventId,
        content: Annotated[str, Field(max_length=MAX_MESSAGE_CHARS, description="The tool's result, as text.")],
        is_error: Annotated[StrictBool, Field(description="Whether the tool failed.")] = False,
    ) -> Annotated[CallToolResult, Session]:
        """Answer a custom tool use (agent.custom_tool_use) with its result; the session then runs on."""
        session = await runtime(ctx).inbox.submit_result(session_id, tool_use_id, content, is_error)
        return reply(session, f"Session {session.id} is {session.status}.")
