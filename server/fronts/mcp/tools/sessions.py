"""MCP tools for sessions and their event logs, and the `session://{id}` resource."""

from __future__ import annotations

from typing import Annotated, Any, cast

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import BaseModel, Field, StrictFloat, StrictInt, StringConstraints

from server.core.agents import ModelId, SkillRef
from server.core.common import PLAIN_TEXT, Metadata
from server.core.events import EventType, StopReason
from server.core.ids import SessionId, VaultId
from server.core.sessions import Session, SessionStatus
from server.fronts.mcp.registry import Registry
from server.fronts.mcp.tools.common import (
    DESTRUCTIVE,
    READ_ONLY,
    WRITE,
    Ctx,
    Cursor,
    IncludeArchived,
    Limit,
    Version,
    reply,
    runtime,
)
from server.services.runtime import Runtime
from server.services.sessions import NewSession, ResourceRequest, SessionDeleted, SessionList

__all__ = ["register_session_tools"]

MAX_WAIT_S = 55


class EventList(BaseModel):
    """A page of a session's log as published (items as plain objects; see `Listing`)."""

    # Not the service's `EventPage`: the SDK validates a tool's structured result against this model, and
    # plain-object items make that check cheap (typed events cost ~1 ms more per 100-event page).

    session_id: str
    events: list[dict[str, Any]] = Field(
        description="Events oldest first: {id (sevt_...), seq (1-based), type, processed_at, ...type's fields}."
    )
    next_cursor: str | None = Field(description="Pass as `after` to continue; the last event id seen.")
    has_more: bool = Field(description="Whether more events already exist after this page.")
    status: SessionStatus
    stop_reason: StopReason | None = None


def _summary(session: Session) -> str:
    reason = f" ({session.stop_reason.type})" if session.stop_reason else ""
    return f"Session {session.id} is {session.status}{reason}; {session.stats.event_count} event(s)."


def register_session_tools(mcp: Registry) -> None:
    @mcp.tool(annotations=WRITE)
    async def create_session(
        ctx: Ctx,
        agent_id: Annotated[
            str | None,
            Field(
                default=None, max_length=64, description="Run this agent; omit for an inline agent from model/system."
            ),
        ] = None,
        agent_version: Annotated[
            Version | None, Field(default=None, description="Pin this version of agent_id; default latest.")
        ] = None,
        model: Annotated[
            ModelId | None,
            Field(
                default=None,
                description="Model id ('claude-…', 'openai/gpt-…' or '<endpoint>/<model>'); "
                "overrides the agent's model.",
            ),
        ] = None,
        system: Annotated[
            str | None, Field(default=None, max_length=100_000, description="System prompt; overrides the agent's.")
        ] = None,
        environment_id: Annotated[
            str | None,
            Field(
                default=None, max_length=64, description="Sandbox environment; default image, no network if omitted."
            ),
        ] = None,
        title: Annotated[
            Annotated[str, StringConstraints(max_length=1_000), PLAIN_TEXT] | None, Field(default=None)
        ] = None,
        metadata: Annotated[Metadata | None, Field(default=None)] = None,
        message: Annotated[
            str | None,
            Field(
                default=None, min_length=1, max_length=500_000, description="A first message: the turn starts at once."
            ),
        ] = None,
        resources: Annotated[
            list[ResourceRequest] | None,
            Field(
                default=None,
                max_length=1_015,
                description=(
                    "Git repositories to clone into /workspace before the first turn: {type:'github_repository', url, "
                    "mount_path?, checkout?:{type:'branch',name}|{type:'commit',sha}, authorization_token?}. The token "
                    "(or a vault's github_token for the host) is used on the host only and never shown again. "
                    "Uploaded files (upload_file) to mount read-only: {type:'file', file_id, mount_path?} "
                    "(default /mnt/session/uploads/<file_id>)."
                ),
            ),
        ] = None,
        vault_ids: Annotated[
            list[VaultId] | None,
            Field(
                default=None,
                max_length=16,
                description="Vaults (vlt_...) the host takes credentials from for this session (MCP servers, git).",
            ),
        ] = None,
        skills: Annotated[
            list[SkillRef] | None,
            Field(
                default=None,
                max_length=20,
                description="Replaces the agent's skills for this session: [{type:'custom', skill_id, version?}]; "
                "each is pinned (latest when no version is given).",
            ),
        ] = None,
    ) -> Annotated[CallToolResult, Session]:
        """Create an agent session: a long-lived conversation whose tools run in its own sandbox.

        With agent_id it runs that agent (pinned version); without, an inline agent with the given
        model/system and the full built-in toolset. It starts idle, with an empty event log."""
        request = NewSession(
            agent_id=agent_id,
            agent_version=agent_version,
            model=model,
            system=system,
            environment_id=environment_id,
            title=title,
            metadata=metadata or {},
            resources=resources or [],
            vault_ids=vault_ids or [],
            skills=skills,
        )
        session = await runtime(ctx).lifecycle.create(request, first_message=message)
        return reply(session, f"Created session {session.id} ({session.status}).")

    @mcp.tool(annotations=READ_ONLY)
    async def get_session(ctx: Ctx, session_id: SessionId) -> Annotated[CallToolResult, Session]:
        """Get a session: status, stop reason, pinned agent, environment, token usage."""
        session = await runtime(ctx).sessions.get(session_id)
        return reply(session, _summary(session))

    @mcp.tool(annotations=READ_ONLY)
    async def list_sessions(
        ctx: Ctx,
        status: Annotated[
            SessionStatus | None, Field(default=None, description="Only sessions in this status.")
        ] = None,
        agent_id: Annotated[str | None, Field(default=None, max_length=64, description="Only this agent's.")] = None,
        limit: Limit = 20,
        cursor: Cursor = None,
        include_archived: IncludeArchived = False,
    ) -> Annotated[CallToolResult, SessionList]:
        """List sessions, newest first."""
        page = await runtime(ctx).sessions.list_page(limit, cursor, status, agent_id, include_archived)
        more = "; more with next_cursor" if page.next_cursor else ""
        return reply(page, f"{len(page.sessions)} session(s){more}.")

    @mcp.tool(annotations=DESTRUCTIVE)
    async def archive_session(ctx: Ctx, session_id: SessionId) -> Annotated[CallToolResult, Session]:
        """Archive a session: it becomes terminated and read-only; its log stays. Refused while running."""
        session = await runtime(ctx).lifecycle.archive(session_id)
        return reply(session, _summary(session))

    @mcp.tool(annotations=DESTRUCTIVE)
    async def delete_session(ctx: Ctx, session_id: SessionId) -> Annotated[CallToolResult, SessionDeleted]:
        """Delete a session with its events, output files and sandbox. Refused while running."""
        deleted = await runtime(ctx).lifecycle.delete(session_id)
        return reply(deleted, f"Deleted session {session_id}.")

    @mcp.tool(annotations=READ_ONLY)
    async def get_events(
        ctx: Ctx,
        session_id: SessionId,
        after: Annotated[
            str | None,
            Field(default=None, max_length=64, description="An event id: return only events after it."),
        ] = None,
        limit: Annotated[StrictInt, Field(ge=1, le=200, description="Page size, 1 to 200.")] = 50,
        types: Annotated[
            list[EventType] | None, Field(default=None, max_length=30, description="Only these event types.")
        ] = None,
        wait_seconds: Annotated[
            StrictFloat,
            Field(ge=0, le=MAX_WAIT_S, description="Long poll: wait up to this long for a first new event."),
        ] = 0,
    ) -> Annotated[CallToolResult, EventList]:
        """Read a session's event log, oldest first, after a cursor. Long strings are cut with a marker.

        Pass next_cursor back as `after` to continue; with wait_seconds it returns as soon as an event exists."""
        page = await runtime(ctx).sessions.events(session_id, after, limit, types, wait_seconds)
        more = " More with next_cursor." if page.has_more else ""
        return reply(page, f"{len(page.events)} event(s); session is {page.status}.{more}")

    @mcp.resource("session://{session_id}", mime_type="application/json", description="A session as JSON.")
    async def session_resource(session_id: str, ctx: Context) -> str:
        session = await cast(Runtime, ctx.request_context.lifespan_context).sessions.get(session_id)
        return session.model_dump_json(indent=2)
