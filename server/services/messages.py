"""What clients send a session: messages, confirmations, custom tool results, interrupts.

Each is validated against the log (is the session open, is that tool use
really waiting for this?), recorded as an event, and then the session's run is
started if the session can go on. `send_message` also waits, up to
`wait_seconds`, for the session to go idle, and reports what happened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

import anyio
from pydantic import BaseModel, Field, JsonValue

from server.brain.conversation import PendingToolUse, needs_action, rebuild
from server.brain.loop import SessionRunner
from server.core.blocking import in_thread
from server.core.content import ContentBlock, TextBlock
from server.core.errors import ConflictError, InvalidRequestError
from server.core.events import (
    AgentMessage,
    Event,
    EventBody,
    SessionStatusIdle,
    SessionStatusRunning,
    StopReason,
    UserCustomToolResult,
    UserInterrupt,
    UserMessage,
    UserToolConfirmation,
)
from server.core.sessions import Session, SessionStatus
from server.services.sessions import SessionManager, bounded
from server.services.skill_delivery import SessionSkills
from server.services.user_events import MAX_MESSAGE_CHARS, UserEvent, check_user_events
from server.store.ports import SessionStore

__all__ = ["MAX_MESSAGE_CHARS", "Inbox", "MessageOutcome"]

PAGE = 200
MAX_REPLY_EVENTS = 50
"""A reply carries the newest events of the call; get_events has the rest."""

Progress = Callable[[float, str], Awaitable[None]]


class MessageOutcome(BaseModel):
    session_id: str
    status: SessionStatus
    stop_reason: StopReason | None = None
    reply: str | None = Field(description="The agent's final message when the session went idle; else null.")
    events: list[dict[str, JsonValue]] = Field(description="Events since the message (the newest, up to 50).")
    next_cursor: str | None = Field(description="Pass as `after` to get_events to read on from here.")


FileCheck = Callable[[Sequence[ContentBlock]], Awaitable[None]]
"""Refuses blocks whose `file` source names no upload (`FileService.check_sources`)."""


class Inbox:
    def __init__(
        self,
        store: SessionStore,
        sessions: SessionManager,
        runner: SessionRunner,
        check_files: FileCheck | None = None,
        skills: SessionSkills | None = None,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._runner = runner
        self._check_files = check_files
        self._skills = skills

    async def send(self, session_id: str, events: Sequence[UserEvent]) -> list[Event]:
        """Records what a client sent, in order and in one append, then acts on it; returns the recorded events.

        Everything is checked before anything is recorded. A message starts the turn (marked running in the same
        append) or joins the one going; an interrupt stops the run; answers to waiting tool uses let the session
        run on once nothing waits any more (else it idles again on what still waits)."""
        check_user_events(events)
        if self._check_files is not None:  # a message naming a missing upload is refused now, not at its turn
            await self._check_files(
                [b for e in events if isinstance(e, UserMessage | UserCustomToolResult) for b in e.content]
            )
        session = await self._open_session(session_id)
        answered = await self._check_answers(session, events)
        starts = any(isinstance(event, UserMessage) for event in events)
        events = [await self._with_skill(session, event) for event in events]
        bodies: list[EventBody] = list(events)
        if starts and session.status != "running":  # the turn starts now: say so before this call returns
            bodies.append(SessionStatusRunning())
        recorded = await self._sessions.append(session.id, bodies)
        if any(isinstance(event, UserInterrupt) for event in events):
            await self._runner.interrupt(session.id)
        if starts:
            self._runner.start(session.id)
        elif answered:
            await self._run_on_if_answered(session.id)
        return recorded[: len(events)]

    async def _with_skill(self, session: Session, event: UserEvent) -> UserEvent:
        """A message starting with `/name` (one of the session's skills) records that skill, SKILL.md included, for
        its turn; the server alone sets `skill`, so whatever a client sent there is dropped."""
        if not isinstance(event, UserMessage):
            return event
        plain = event if "skill" not in event.model_fields_set else UserMessage(content=event.content)
        first = next(iter(plain.content), None)
        if self._skills is None or not isinstance(first, TextBlock):
            return plain
        invoked = await self._skills.invocation(session.agent.skills, first.text)
        return plain if invoked is None else plain.model_copy(update={"skill": invoked})

    async def send_message(
        self, session_id: str, text: str, wait_s: float, progress: Progress | None
    ) -> MessageOutcome:
        message, *_ = await self.send(session_id, [UserMessage.text(text)])
        return await self.wait_idle(session_id, message, wait_s, progress)

    async def wait_idle(
        self, session_id: str, since: Event, wait_s: float, progress: Progress | None
    ) -> MessageOutcome:
        """Collects events after `since` until the session's run is over, or `wait_s` passes.

        Called right after the run was started, so "no run is going" means it is over, even when its log still
        says `running` (a run that could not record its end, e.g. on a full disk: the outcome says so)."""
        collected: list[Event] = [since]
        cursor = since.id
        deadline = anyio.current_time() + wait_s
        while True:
            # Armed before looking: a later append or the run's end (both notify) wakes the wait below.
            signal = self._sessions.notifier.arm(session_id, settle_only=progress is None)
            read, state = await in_thread(self._store.read_page, session_id, cursor, PAGE + 1)
            new, has_more = read[:PAGE], len(read) > PAGE
            collected.extend(new)
            cursor = new[-1].id if new else cursor
            if new and progress is not None:
                await progress(float(len(collected)), f"{new[-1].type} (event {new[-1].seq})")
            settled = not self._runner.active(session_id) and not has_more
            failure = self._runner.unrecorded_failure(session_id) if settled else None
            if failure is not None and state.status == "running":  # the run ended, its log could not say why
                raise type(failure)(str(failure))
            remaining = deadline - anyio.current_time()
            if settled or remaining <= 0:
                return _outcome(session_id, state.status, state.stop_reason, collected, settled)
            if not has_more:
                with anyio.move_on_after(remaining):
                    await signal.wait()

    async def confirm(self, session_id: str, tool_use_id: str, allow: bool, deny_message: str | None) -> Session:
        if deny_message is not None and allow:
            raise InvalidRequestError("deny_message goes with allow=false only")
        verdict: Literal["allow", "deny"] = "allow" if allow else "deny"
        if deny_message is None:
            answer = UserToolConfirmation(tool_use_id=tool_use_id, result=verdict)
        else:
            answer = UserToolConfirmation(tool_use_id=tool_use_id, result=verdict, deny_message=deny_message)
        await self.send(session_id, [answer])
        return await self._sessions.get(session_id)

    async def submit_result(self, session_id: str, tool_use_id: str, content: str, is_error: bool) -> Session:
        answer = UserCustomToolResult(
            custom_tool_use_id=tool_use_id, content=[TextBlock(text=content)], is_error=is_error
        )
        await self.send(session_id, [answer])
        return await self._sessions.get(session_id)

    async def interrupt(self, session_id: str) -> Session:
        await self.send(session_id, [UserInterrupt()])
        return await self._sessions.get(session_id)

    async def _open_session(self, session_id: str) -> Session:
        session = await self._sessions.get(session_id)
        if session.archived_at is not None or session.status == "terminated":
            raise ConflictError(f"session {session_id!r} is archived; create a new session to go on")
        return session

    async def _check_answers(self, session: Session, events: Sequence[UserEvent]) -> bool:
        """Checks that each answer meets a tool use waiting for that kind of answer; False if none is an answer."""
        answers = [e for e in events if isinstance(e, UserToolConfirmation | UserCustomToolResult)]
        if not answers:
            return False
        conversation = rebuild(await self._sessions.read_events(session.id, 0))
        waiting = needs_action(conversation.pending)
        uses = {use.event_id: use for use in conversation.pending}
        answered: set[str] = set()
        for answer in answers:
            use_id = answer.tool_use_id if isinstance(answer, UserToolConfirmation) else answer.custom_tool_use_id
            use = uses.get(use_id)
            if use is None or use_id not in waiting or use_id in answered:
                raise InvalidRequestError(
                    f"event {use_id!r} is not waiting for an answer in session {session.id!r}"
                    f" (waiting: {[w for w in waiting if w not in answered] or 'nothing'}); get_session shows what is"
                )
            answered.add(use_id)
            _check_answer_kind(answer, use)
        return True

    async def _run_on_if_answered(self, session_id: str) -> None:
        """Once nothing waits any more, the session runs on (else it re-idles on what still waits)."""
        conversation = rebuild(await self._sessions.read_events(session_id, 0))
        remaining = needs_action(conversation.pending)
        if remaining:
            idle = SessionStatusIdle.because("requires_action", list(remaining))
            await self._sessions.append(session_id, [idle])
        else:
            self._runner.start(session_id)


def _check_answer_kind(answer: UserToolConfirmation | UserCustomToolResult, use: PendingToolUse) -> None:
    use_id = use.event_id
    if isinstance(answer, UserCustomToolResult):
        if use.kind != "agent.custom_tool_use":
            raise InvalidRequestError(
                f"event {use_id!r} is a {use.kind}, not a custom tool use; confirm it with a tool confirmation"
                " (MCP: confirm_tool_use)"
            )
        return
    if use.kind not in ("agent.tool_use", "agent.mcp_tool_use") or use.evaluated_permission != "ask":
        raise InvalidRequestError(
            f"event {use_id!r} is a {use.kind} that does not wait for a confirmation"
            + (
                "; answer it with a custom tool result (MCP: submit_tool_result)"
                if use.kind == "agent.custom_tool_use"
                else ""
            )
        )


def _outcome(
    session_id: str,
    status: SessionStatus,
    stop_reason: StopReason | None,
    events: list[Event],
    settled: bool,
) -> MessageOutcome:
    reply = _last_reply(events) if settled and status == "idle" else None
    shown = [bounded(e).model_dump(mode="json") for e in events[-MAX_REPLY_EVENTS:]]
    return MessageOutcome(
        session_id=session_id,
        status=status,
        stop_reason=stop_reason,
        reply=reply,
        events=shown,
        next_cursor=events[-1].id if events else None,
    )


def _last_reply(events: list[Event]) -> str | None:
    """The text of the newest `agent.message` (its text blocks joined), if there is one."""
    for event in reversed(events):
        if event.type != "agent.message":
            continue
        match event.body:
            case AgentMessage(content=blocks):
                return "".join(block.text for block in blocks if isinstance(block, TextBlock))
            case _:  # stored fields that do not read as a message: no text
                return ""
    return None
