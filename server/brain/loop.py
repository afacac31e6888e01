"""Sessions come alive: each session's agent loop, driven from its event log.

One run at a time per session, many sessions at once in one task group. A run
rebuilds the conversation from the log at every step (see
`brain/conversation.py`), so there is no state to lose: a run that dies, is
interrupted or is killed with the server leaves a log the next run continues.

A step is one of:

1. Settle pending tool uses: run the allowed ones in the sandbox, answer denied
   ones with the deny message, and stop at the ones that need the client
   (`always_ask` without a confirmation, custom tools) with an idle
   `requires_action` naming them.
2. If the newest message is the user's (a message, or tool results), ask the
   model for a turn and record it; if it is the assistant's, the turn is over:
   idle with `end_turn`.

Model failures that may pass (overloaded, rate limited, network) are retried
with backoff, each retry a `session.error` with `retry_status: retrying`; when
the retries run out, or the failure cannot pass (bad key, unknown model), the
session idles with `retries_exhausted` and an error that says what to fix.

Remote MCP servers (the agent's `mcp_servers`) are connected at the start of each run that
needs them, through the `RemoteMcp` port: its connections are kept per session and reused by
later runs until the session is archived or deleted. A server that cannot be
reached, or refuses the credential, is a `session.error` (`mcp_connection_failed_error`,
`mcp_authentication_failed_error`, `retry_status: exhausted`) and the run goes on without
that server's tools; the next run tries it again.

After a crash, `resume` answers every tool use that was allowed to run but has
no result with an error saying it was interrupted (tools are not re-run
blindly), then runs the session on. A model request in flight is simply asked
again: requests are rebuilt from the log, so nothing is duplicated.

Infrastructure failures are not the model's business. A Docker engine that does
not answer is waited for, with backoff, for up to `engine_wait_s` (one
`session.error` with `retry_status: retrying` when the wait starts). The
server's default image, when missing, is built for the session (one
`session.error` with `retry_status: retrying` says so; sessions that need it
meanwhile wait for the same build), then the step runs. A sandbox that cannot
start at all (the wait ran out, that build failed, an environment's image is
missing or its packages failed) ends the run with one `session.error`
(`exhausted`) and an idle `retries_exhausted`, and the tool use stays
unanswered: it never ran, so the session's next message runs it. Anything else
that breaks a run (the store refusing writes, a bug) ends that run alone, with a
`session.error` when one can be recorded and a log line when not; the log keeps
saying `running`, so the next message or the next server start picks the
session up where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import anyio
import anyio.abc
from pydantic import JsonValue

from server.brain.attachments import has_file_sources, inline_files
from server.brain.conversation import (
    Conversation,
    ConversationBuilder,
    Message,
    PendingToolUse,
    estimated_tokens,
    needs_action,
)
from server.brain.model import ModelClient, ModelError, ModelTurn
from server.brain.ports import (
    FileContents,
    Previews,
    RemoteMcp,
    ResourceDelivery,
    SessionLog,
    SessionSandboxes,
    SkillListing,
)
from server.brain.tools import OfferedTool, offered_tools
from server.core.errors import (
    EngineUnreachableError,
    ImageMissingError,
    InvalidRequestError,
    SandboxUnavailableError,
    ServerError,
    UnexpectedError,
)
from server.core.events import (
    AgentCustomToolUse,
    AgentMcpToolResult,
    AgentMcpToolUse,
    AgentMessage,
    AgentThinking,
    AgentThreadContextCompacted,
    AgentToolResult,
    AgentToolUse,
    Event,
    EventBody,
    ModelUsage,
    PermissionEvaluation,
    SessionError,
    SessionStatusIdle,
    SessionStatusRunning,
    SessionUsage,
    SpanModelRequestEnd,
    SpanModelRequestStart,
    StopReason,
    with_event_id,
)
from server.core.ids import new_id
from server.core.models import ModelLimits
from server.core.sessions import Session
from server.core.skills import skills_prompt
from server.core.tools import RemoteMcpError, RemoteTool, ToolResult

__all__ = ["RETRY_DELAYS_S", "SessionRunner"]

logger = logging.getLogger(__name__)

MAX_TOKENS = 16_000
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0)
"""About half a minute of retries before a turn gives up: long enough for a blip, short enough to tell the client."""
MAX_RETRY_AFTER_S = 60.0
REFUSAL_DETAILS: dict[str, JsonValue] = {
    "type": "refusal",
    "explanation": "the model's endpoint stopped the answer (a safety classifier or content filter)",
}
KEEP_RECENT_RESULTS = 3
"""Trimming spares the newest tool results: the model is usually working with them."""
INTERRUPTED_BY_RESTART = "interrupted: the server stopped while this tool was running; it was not run again"
INTERRUPTED_BY_USER = "interrupted by the user before this tool finished"
ENGINE_WAIT_S = 60.0
"""How long a tool call waits for a Docker engine that does not answer: a restart of the engine takes seconds;
a minute later a person has to act, and the session says so."""
MAX_ENGINE_RETRY_DELAY_S = 8.0

T = TypeVar("T")


@dataclass
class _Run:
    scope: anyio.CancelScope
    again: bool = False  # input arrived after the run's last look at the log


class _SandboxDown(Exception):
    """The sandbox cannot run this step (see the module docstring); the message is the session.error's."""


class SessionRunner:
    def __init__(
        self,
        log: SessionLog,
        sandboxes: SessionSandboxes,
        model: ModelClient,
        task_group: anyio.abc.TaskGroup,
        *,
        builtin_tools: Mapping[str, Mapping[str, Any]],
        remote_mcp: RemoteMcp,
        resources: ResourceDelivery,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
        context_budget_tokens: int = 150_000,
        model_limits: Callable[[str], ModelLimits] | None = None,
        engine_wait_s: float = ENGINE_WAIT_S,
        previews: Previews | None = None,
        files: FileContents | None = None,
        skills: SkillListing | None = None,
    ) -> None:
        self._log = log
        self._sandboxes = sandboxes
        self._model = model
        self._task_group = task_group
        self._builtin_tools = builtin_tools  # the sandbox's tool definitions, by name
        self._remote_mcp = remote_mcp
        self._resources = resources
        self._retry_delays_s = tuple(retry_delays_s)
        self._limits = model_limits or (lambda _model_id: ModelLimits(context_budget_tokens, MAX_TOKENS))
        self._engine_wait_s = engine_wait_s
        self._previews = previews
        self._files = files
        self._skills = skills
        self._runs: dict[str, _Run] = {}
        self._builders: dict[str, ConversationBuilder] = {}  # the log folded so far, per session with a run
        self._log_chars: dict[str, int] = {}  # its size: the conversation is never bigger
        self._ended: dict[str, anyio.Event] = {}
        self._unrecorded: dict[str, ServerError] = {}  # why a session's last run ended, when the log could not say

    def active(self, session_id: str) -> bool:
        """Whether a run is going (or about to go) for the session."""
        return session_id in self._runs

    def unrecorded_failure(self, session_id: str) -> ServerError | None:
        """Why the session's last run ended, if that could not be recorded in its log (the store refused)."""
        return self._unrecorded.get(session_id)

    def start(self, session_id: str) -> None:
        """Makes sure a run will look at the session's log (a run going now looks again before it ends)."""
        run = self._runs.get(session_id)
        if run is not None:
            run.again = True
            return
        run = _Run(anyio.CancelScope())
        self._runs[session_id] = run
        self._unrecorded.pop(session_id, None)
        self._ended.setdefault(session_id, anyio.Event())
        self._task_group.start_soon(self._run, session_id, run, name=f"session {session_id}")

    async def interrupt(self, session_id: str) -> None:
        """Stops the session's run (model stream or tool) and waits until it has gone idle.

        A session whose log says `running` with no run going (its run ended without being able to record
        it, e.g. the disk was full) gets a run that is stopped at once, so it too ends idle."""
        run = self._runs.get(session_id)
        if run is None:
            if (await self._log.get(session_id)).status != "running":
                return
            self.start(session_id)
            run = self._runs[session_id]
        ended = self._ended.setdefault(session_id, anyio.Event())
        run.scope.cancel()
        with anyio.move_on_after(10):
            await ended.wait()

    async def _run(self, session_id: str, run: _Run) -> None:
        try:
            while True:
                run.again = False
                with run.scope:
                    await self._drive(session_id)
                if run.scope.cancel_called:
                    with anyio.CancelScope(shield=True):
                        await self._after_interrupt(session_id)
                    break
                if not run.again:
                    break
        except Exception as exc:  # one session's failure must not take the others down
            if isinstance(exc, ServerError):  # a cause it names (the store refused a write, say): no traceback
                logger.error("session %s: the run ended: %s", session_id, exc)
            else:
                logger.exception("session %s: the run failed", session_id)
            with anyio.CancelScope(shield=True):
                await self._fail(session_id, exc)
        finally:
            self._runs.pop(session_id, None)
            self._builders.pop(session_id, None)
            self._log_chars.pop(session_id, None)
            self._ended.pop(session_id, anyio.Event()).set()
            # The run's end is news too: a waiter that saw the last idle while the run was still winding
            # down looks again (no event would wake it otherwise).
            self._log.run_ended(session_id)

    # One run ----------------------------------------------------------------------------------------------

    async def _drive(self, session_id: str) -> None:
        session = await self._log.get(session_id)
        if session.archived_at is not None:
            return
        if session.status != "running":  # a message may have marked it running already
            await self._append(session_id, [SessionStatusRunning()])
        try:
            await self._steps(session)
        except _SandboxDown as down:
            await self._append(session_id, [SessionError.of("unknown_error", str(down), "exhausted")])
            await self._idle(session_id, {"type": "retries_exhausted"})

    async def _steps(self, session: Session) -> None:
        session_id = session.id
        if not await self._deliver_resources(session):
            return
        session = await self._with_skills_listed(session)
        remote_tools = await self._open_mcp(session)
        offered = {tool.name: tool for tool in offered_tools(session.agent.tools, self._builtin_tools, remote_tools)}
        while True:
            conversation = await self._conversation(session_id)
            waiting = needs_action(conversation.pending)
            # The last result is written together with what follows it (one store write fewer per turn).
            lead = await self._settle(session, conversation.pending, waiting)
            if waiting:
                await self._idle(session_id, {"type": "requires_action", "event_ids": list(waiting)}, lead)
                return
            if not lead and (not conversation.messages or conversation.messages[-1]["role"] == "assistant"):
                await self._idle(session_id, {"type": "end_turn"})
                return
            if not await self._model_turn(session, offered, lead):
                return

    async def _conversation(self, session_id: str) -> Conversation:
        """Built from the log; the run folds each event in once, so a step reads and folds only what is new."""
        builder = self._builders.get(session_id)
        if builder is None:
            builder = self._builders[session_id] = ConversationBuilder()
            self._log_chars[session_id] = 0
            new = await self._log.read_events(session_id, 0)
        elif (self._log.newest_seq(session_id) or builder.last_seq + 1) > builder.last_seq:
            new = await self._log.read_events(session_id, builder.last_seq)
        else:
            new = []  # nothing was appended since the last read
        self._remember(session_id, new)
        return builder.conversation()

    async def _settle(
        self, session: Session, pending: Sequence[PendingToolUse], waiting: Sequence[str]
    ) -> list[EventBody]:
        """Answers the pending uses that need no client. Each result is written as soon as it exists,
        except the last, which is returned for the caller to write with what comes next."""
        results: list[EventBody] = []
        for use in pending:
            if use.event_id in waiting:
                continue
            if results:
                await self._append(session.id, results)
            results = [_tool_result_event(use, await self._answer(session, use))]
        return results

    async def _answer(self, session: Session, use: PendingToolUse) -> ToolResult:
        if use.evaluated_permission == "deny":
            return ToolResult.text(f"{use.name}: this tool is not enabled for this agent", is_error=True)
        if use.confirmation == "deny":
            return ToolResult.text(use.deny_message or f"Permission to use {use.name} has been denied.", True)
        if use.kind == "agent.mcp_tool_use":
            return await self._call_mcp(session, use)

        async def execute() -> ToolResult:
            mcp_hosts = [server.host_entry for server in session.agent.mcp_servers]
            sandbox = self._sandboxes.tools(session.id, session.environment, mcp_hosts=mcp_hosts)
            return await sandbox.execute(use.name, use.input)

        try:
            return await self._in_sandbox(session.id, execute)
        except _SandboxDown:
            raise
        except Exception:  # a tool that crashes gives the model an error result, not a dead session
            logger.exception("session %s: tool %s crashed", session.id, use.name)
            return ToolResult.text(f"{use.name}: the tool failed unexpectedly; see the server log", is_error=True)

    async def _in_sandbox(self, session_id: str, action: Callable[[], Awaitable[T]]) -> T:
        """Runs a step that needs the sandbox, waiting out a Docker engine that does not answer.

        `EngineUnreachableError` and `ImageMissingError` are only raised before anything reached the sandbox, so
        trying again runs nothing twice. Raises `_SandboxDown` when the wait runs out or the sandbox cannot start
        at all (its image could not be built, say)."""
        delays: Iterator[float] | None = None
        built = False
        while True:
            try:
                return await action()
            except EngineUnreachableError as exc:
                if delays is None:
                    delays = _backoff(self._engine_wait_s)
                    waiting = f"{exc}. Waiting up to {self._engine_wait_s:.0f} s for it before this turn gives up"
                    await self._append(session_id, [SessionError.of("unknown_error", waiting, "retrying")])
                delay = next(delays, None)
                if delay is None:
                    raise _SandboxDown(
                        f"{exc}. Waited {self._engine_wait_s:.0f} s for it; nothing ran. Send a message to go on "
                        "once the engine runs"
                    ) from exc
                logger.info("session %s: the Docker engine does not answer; trying again in %.1f s", session_id, delay)
                await anyio.sleep(delay)
            except ImageMissingError as exc:
                if built:
                    raise _SandboxDown(f"{exc}. It was built, yet it is still missing; nothing ran") from exc
                await self._build_image(session_id, exc.image)
                built = True
            except SandboxUnavailableError as exc:
                raise _SandboxDown(f"{exc}. Nothing ran; send a message to go on once this is fixed") from exc

    async def _build_image(self, session_id: str, image: str) -> None:
        """Has the missing default image built, or waits for the build another session started; the session's
        log says so once, with a `retrying` error (the contract's event for "the server is on it; wait")."""
        notice = (
            f"the sandbox image {image!r} is not on the Docker engine, so the server is building it, as "
            "'managed-sessions image build' does; this takes a few minutes (the server log shows its progress), "
            "and this turn goes on once it is ready"
        )
        await self._append(session_id, [SessionError.of("unknown_error", notice, "retrying")])
        logger.info("session %s: waiting for the sandbox image %s to be built", session_id, image)
        try:
            await self._sandboxes.build_image(image)
        except SandboxUnavailableError as exc:
            raise _SandboxDown(
                f"{exc}. Nothing ran. 'managed-sessions image build' builds it with its whole output on the "
                "terminal; send a message to try again once the cause is fixed"
            ) from exc
        logger.info("session %s: the sandbox image %s is ready", session_id, image)

    async def _with_skills_listed(self, session: Session) -> Session:
        """The session as this run sees it: its system prompt followed by the list of its skills, if it has any."""
        if not session.agent.skills or self._skills is None:
            return session
        listed = skills_prompt(await self._skills.summaries(session))
        system = "\n\n".join(part for part in (session.agent.system, listed) if part)
        return session.model_copy(update={"agent": session.agent.model_copy(update={"system": system})})

    async def _deliver_resources(self, session: Session) -> bool:
        """Clones the session's repositories into its sandbox and places its files and skills, before the first
        turn; False if one failed.

        A failure is a `session.error` (`repository_*_error`, saying what to fix) and the run stops there:
        the agent would work without the code it was given. The session's next message tries again."""
        if not session.resources and not session.agent.skills:
            return True
        failures = await self._in_sandbox(session.id, lambda: self._resources.deliver(session))
        if failures:
            await self._append(session.id, failures)
            await self._idle(session.id, {"type": "retries_exhausted"})
            return False
        return True

    # Remote MCP servers ----------------------------------------------------------------------------------

    async def _open_mcp(self, session: Session) -> list[RemoteTool]:
        """Connects the agent's MCP servers not connected yet; each failure is a session.error, not the run's end."""
        tools, failures = await self._remote_mcp.open(session)
        await self._append(session.id, [_mcp_error_event(failure) for failure in failures])
        return tools

    async def _call_mcp(self, session: Session, use: PendingToolUse) -> ToolResult:
        if use.server_name is None:
            return ToolResult.text(f"{use.name}: the MCP server is not connected", is_error=True)
        try:
            return await self._remote_mcp.call(session.id, use.server_name, use.name, use.input)
        except RemoteMcpError as exc:
            await self._append(session.id, [_mcp_error_event(exc)])
            return ToolResult.text(f"{use.name}: {exc}", is_error=True)

    async def _within_budget(self, session_id: str, conversation: Conversation, budget_tokens: int) -> Conversation:
        """Trims old tool results (keeping the newest few) when the conversation outgrows the model's budget."""
        if self._log_chars.get(session_id, 0) // 4 <= budget_tokens:
            return conversation  # the whole log fits: no need to measure the conversation itself
        size = estimated_tokens(conversation.messages)
        if size <= budget_tokens or not conversation.result_seqs:
            return conversation
        seqs = sorted(conversation.result_seqs.values())
        for mark in (seqs[-KEEP_RECENT_RESULTS] if len(seqs) > KEEP_RECENT_RESULTS else None, seqs[-1] + 1):
            if mark is None:
                continue
            compacted = AgentThreadContextCompacted(trimmed_before_seq=mark, estimated_tokens_before=size)
            await self._append(session_id, [compacted])
            conversation = await self._conversation(session_id)
            if estimated_tokens(conversation.messages) <= budget_tokens:
                break
        return conversation

    async def _model_turn(self, session: Session, offered: dict[str, OfferedTool], lead: list[EventBody]) -> bool:
        """Asks the model for a turn and records it (its content, then the span's end); False if it gave up.

        `lead` (a tool result not yet written) goes into the same write as the span's start."""
        limits = self._limits(session.agent.model.id)
        for attempt in range(len(self._retry_delays_s) + 1):
            start = (await self._append(session.id, [*lead, SpanModelRequestStart()]))[-1]
            lead = []
            conversation = await self._conversation(session.id)
            conversation = await self._within_budget(session.id, conversation, limits.budget_tokens)
            preview = None if self._previews is None else _Preview(session.id, self._previews)
            try:
                messages = await self._with_files(conversation.messages)
            except ServerError as exc:
                await self._append(
                    session.id, [_span_end(start, None), SessionError.of("unknown_error", str(exc), "exhausted")]
                )
                await self._idle(session.id, {"type": "retries_exhausted"})
                return False
            try:
                turn = await self._model.turn(
                    model=session.agent.model.id,
                    system=session.agent.system,
                    messages=messages,
                    tools=[tool.spec for tool in offered.values()],
                    max_tokens=limits.max_output_tokens,
                    preview=preview,
                )
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):  # interrupted: the span still ends, as an error
                    await self._append(session.id, [_span_end(start, None)])
                raise
            except ModelError as exc:
                retrying = exc.retryable and attempt < len(self._retry_delays_s)
                if not retrying:
                    await self._append(
                        session.id, [_span_end(start, None), SessionError.of(exc.kind, str(exc), "exhausted")]
                    )
                    await self._idle(session.id, {"type": "retries_exhausted"})
                    return False
                scheduled = self._retry_delays_s[attempt]
                delay = min(scheduled if exc.retry_after_s is None else exc.retry_after_s, MAX_RETRY_AFTER_S)
                retry = f"{exc}; retrying in {delay:g} s (retry {attempt + 1} of {len(self._retry_delays_s)})"
                await self._append(session.id, [_span_end(start, None), SessionError.of(exc.kind, retry, "retrying")])
                await anyio.sleep(delay)
                continue
            preview_ids = {} if preview is None else preview.ids
            await self._append(session.id, [*_turn_events(turn, offered, preview_ids), _span_end(start, turn)])
            if turn.stop_reason == "refusal" and not any(block["type"] == "tool_use" for block in turn.content):
                await self._idle(session.id, {"type": "refusal"}, details=REFUSAL_DETAILS)
                return False
            return True
        return False

    async def _with_files(self, messages: list[Message]) -> list[Message]:
        """The messages with image and document blocks that name an uploaded file carrying its bytes."""
        if not has_file_sources(messages):
            return messages
        if self._files is None:
            raise InvalidRequestError("this server keeps no files; send images and documents as base64")
        return await inline_files(messages, self._files)

    async def _idle(
        self,
        session_id: str,
        stop_reason: dict[str, JsonValue],
        lead: Sequence[EventBody] = (),
        details: dict[str, JsonValue] | None = None,
    ) -> None:
        session = await self._log.get(session_id)
        idle = SessionStatusIdle(stop_reason=StopReason.model_validate(stop_reason))
        if details is not None:
            idle = SessionStatusIdle(stop_reason=idle.stop_reason, stop_details=details)
        await self._append(session_id, [*lead, SessionUsage(usage=ModelUsage(**session.usage.model_dump())), idle])

    async def _after_interrupt(self, session_id: str) -> None:
        conversation = await self._conversation(session_id)
        running = [use for use in conversation.pending if use.event_id not in needs_action(conversation.pending)]
        if any(use.kind == "agent.tool_use" for use in running):
            session = await self._log.get(session_id)
            await self._sandboxes.stop(session_id, session.environment)  # stops the tool: files stay
        interrupted = ToolResult.text(INTERRUPTED_BY_USER, is_error=True)
        await self._append(session_id, [_tool_result_event(use, interrupted) for use in running])
        await self._idle(session_id, {"type": "end_turn"})

    async def _fail(self, session_id: str, exc: Exception) -> None:
        """Records why the run ended, if the store lets it; a log line either way (the caller's)."""
        if isinstance(exc, ServerError):
            message = f"{exc}"
        else:
            message = (
                f"the session's run failed unexpectedly ({type(exc).__name__}); the traceback is in the server's "
                "log. Send a message to go on"
            )
        try:
            await self._append(session_id, [SessionError.of("unknown_error", message, "exhausted")])
            await self._idle(session_id, {"type": "retries_exhausted"})
        except Exception as record_failure:  # noqa: BLE001 - the store itself failed; the log is all that is left
            self._unrecorded[session_id] = (
                record_failure if isinstance(record_failure, ServerError) else UnexpectedError(message)
            )
            logger.error(
                "session %s: could not record that its run failed (%s); it goes on with its next message "
                "or the next server start",
                session_id,
                record_failure,
            )

    async def _append(self, session_id: str, events: Sequence[EventBody]) -> list[Event]:
        appended = await self._log.append(session_id, events) if events else []
        builder = self._builders.get(session_id)
        if builder is not None and appended and appended[0].seq == builder.last_seq + 1:
            self._remember(session_id, appended)  # what this run wrote need not be read back
        return appended

    def _remember(self, session_id: str, events: Sequence[Event]) -> None:
        """Folds events into the run's conversation, and adds their size to the log's running total."""
        builder = self._builders.get(session_id)
        if builder is None:
            return
        builder.extend(events)
        self._log_chars[session_id] = self._log_chars.get(session_id, 0) + sum(len(e.model_dump_json()) for e in events)

    # After a restart --------------------------------------------------------------------------------------

    async def resume(self, session_id: str, *, start: bool = True) -> None:
        """Continues a session that was running when the server stopped: its log is told that the tools in
        flight were interrupted, then (`start`) its run goes on. With `start=False` the caller starts it later,
        as the runtime does after recording every session's interruption, so no session's record waits behind
        the runs of those resumed before it."""
        conversation = await self._conversation(session_id)
        waiting = needs_action(conversation.pending)
        interrupted = ToolResult.text(INTERRUPTED_BY_RESTART, is_error=True)
        stale = [
            use
            for use in conversation.pending
            if use.event_id not in waiting and use.confirmation != "deny" and use.evaluated_permission != "deny"
        ]
        await self._append(session_id, [_tool_result_event(use, interrupted) for use in stale])
        if start:
            self.start(session_id)


class _Preview:
    """A turn's previews: each text block becomes an agent.message, each thinking block an agent.thinking, whose
    id is chosen when the block starts, so the clients that saw it stream recognise the stored event."""

    def __init__(self, session_id: str, previews: Previews) -> None:
        self._session_id = session_id
        self._previews = previews
        self._text_ids: dict[int, str] = {}
        self.ids: dict[str, list[str]] = {"text": [], "thinking": []}
        """The ids of the turn's text and thinking blocks, each kind in order."""

    def block_started(self, index: int, kind: Literal["text", "thinking"]) -> None:
        event_id = new_id("sevt")
        self.ids[kind].append(event_id)
        if kind == "text":
            self._text_ids[index] = event_id
        self._previews.started(self._session_id, event_id, "agent.message" if kind == "text" else "agent.thinking")

    def text(self, index: int, text: str) -> None:
        event_id = self._text_ids.get(index)
        if event_id is not None:
            self._previews.text(self._session_id, event_id, text)


def _turn_events(
    turn: ModelTurn, offered: dict[str, OfferedTool], preview_ids: Mapping[str, Sequence[str]]
) -> list[EventBody]:
    """The turn's events; its text and thinking blocks take the ids their previews showed (in order)."""
    events: list[EventBody] = []
    ids = {kind: iter(preview_ids.get(kind, ())) for kind in ("text", "thinking")}
    for block in turn.content:
        kind = str(block["type"])
        if kind == "tool_use":
            events.append(_tool_use_event(block, offered.get(str(block["name"]))))
            continue
        if kind not in ids:
            continue
        event_id = next(ids[kind], None)
        if kind == "thinking":
            body: EventBody = AgentThinking()
        elif block.get("text"):
            body = AgentMessage.text(str(block["text"]))
        else:
            continue
        events.append(body if event_id is None else with_event_id(body, event_id))
    return events


def _tool_use_event(block: dict[str, JsonValue], tool: OfferedTool | None) -> EventBody:
    name, tool_input = str(block["name"]), block.get("input") or {}
    assert isinstance(tool_input, dict)
    if tool is not None and tool.kind == "custom":
        return AgentCustomToolUse(name=name, input=tool_input)
    if tool is None:
        return AgentToolUse(name=name, input=tool_input, evaluated_permission="deny")
    evaluation = PermissionEvaluation(type="always_ask" if tool.permission == "ask" else "always_allow")
    if tool.kind == "mcp":  # recorded by its bare name; the conversation renames it back
        assert tool.tool_name is not None
        assert tool.server_name is not None
        return AgentMcpToolUse(
            name=tool.tool_name,
            mcp_server_name=tool.server_name,
            input=tool_input,
            evaluated_permission=tool.permission,
            evaluation=evaluation,
        )
    return AgentToolUse(name=name, input=tool_input, evaluated_permission=tool.permission, evaluation=evaluation)


def _tool_result_event(use: PendingToolUse, result: ToolResult) -> EventBody:
    content: list[Any] = list(result.content)
    if use.kind == "agent.mcp_tool_use":
        return AgentMcpToolResult(mcp_tool_use_id=use.event_id, content=content, is_error=result.is_error)
    return AgentToolResult(tool_use_id=use.event_id, content=content, is_error=result.is_error)


def _span_end(start: Event, turn: ModelTurn | None) -> EventBody:
    if turn is None:
        return SpanModelRequestEnd(model_request_start_id=start.id, is_error=True)
    usage = turn.usage
    model_usage = ModelUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_input_tokens=usage.cache_read_input_tokens,
        cache_creation_input_tokens=usage.cache_creation_input_tokens,
    )
    return SpanModelRequestEnd(model_request_start_id=start.id, is_error=False, model_usage=model_usage)


def _mcp_error_event(failure: RemoteMcpError) -> EventBody:
    return SessionError.of(failure.kind, str(failure), "exhausted", mcp_server_name=failure.server_name)


def _backoff(budget_s: float) -> Iterator[float]:
    """Waits of 0.5, 1, 2, 4, 8, 8, ... s that add up to `budget_s`."""
    waited, delay = 0.0, 0.5
    while waited < budget_s:
        step = min(delay, budget_s - waited)
        yield step
        waited += step
        delay = min(delay * 2, MAX_ENGINE_RETRY_DELAY_S)
