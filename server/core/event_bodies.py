"""One model per event type: the fields the server writes, plus the API's optional ones it may read.

Frozen and `extra="forbid"`, discriminated on `type`. Fields are declared in the order they are stored, and
a body is stored with only the fields that were set (`stored_fields`), so optional fields absent when written
stay absent when read back. `type` always counts as set. Defaults exist only so that rows an older version
wrote without a field still read; the code that writes an event passes every field it means to store.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from typing_extensions import override

from server.core.content import ContentBlock, TextBlock
from server.core.skills import InvokedSkill

__all__ = [
    "BODY_TYPES",
    "AgentCustomToolUse",
    "AgentMcpToolResult",
    "AgentMcpToolUse",
    "AgentMessage",
    "AgentThinking",
    "AgentThreadContextCompacted",
    "AgentToolResult",
    "AgentToolUse",
    "EventBody",
    "KnownEventBody",
    "ModelUsage",
    "PermissionEvaluation",
    "RetryStatus",
    "SessionError",
    "SessionErrorDetail",
    "SessionStatusIdle",
    "SessionStatusRescheduled",
    "SessionStatusRunning",
    "SessionStatusTerminated",
    "SessionUpdated",
    "SessionUsage",
    "SpanModelRequestEnd",
    "SpanModelRequestStart",
    "StopReason",
    "UnknownEvent",
    "UserCustomToolResult",
    "UserInterrupt",
    "UserMessage",
    "UserToolConfirmation",
    "preassigned_id",
    "stored_fields",
    "with_event_id",
]

Permission = Literal["allow", "ask", "deny"]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    # The id the event is to be stored under, when its writer chose one beforehand (a streamed preview already
    # showed it to clients); never a stored field. A slot, as on `Event`: no cost to validating bodies.
    __slots__ = ("_event_id",)

    @override
    def model_post_init(self, context: object, /) -> None:
        self.__pydantic_fields_set__.add("type")


class _Part(_Body):
    """A nested object of an event (its own `type`, if it has one, always counts as set)."""


# Also the `stop_reason` clients read on a Session: its docstring is in the public output schema (keep it), and
# it stays open to fields a newer version may add.
class StopReason(BaseModel):
    """Why an idle session stopped: end_turn, requires_action (+ event_ids), retries_exhausted, ..."""

    model_config = ConfigDict(extra="allow")

    type: str
    event_ids: list[str] | None = None


class PermissionEvaluation(_Part):
    type: str


class RetryStatus(_Part):
    type: Literal["retrying", "exhausted", "terminal"]


class ModelUsage(_Part):
    """Token counts of one model request, or of a session so far (`session.usage`)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int | None = 0
    cache_creation_input_tokens: int | None = 0


class SessionErrorDetail(_Part):
    type: str
    message: str
    retry_status: RetryStatus
    mcp_server_name: str | None = None
    repository_url: str | None = None
    credential_id: str | None = None
    vault_id: str | None = None


class UserMessage(_Body):
    type: Literal["user.message"] = "user.message"
    content: list[ContentBlock]
    skill: InvokedSkill | None = Field(
        default=None,
        description="Set by the server when the message starts with `/<skill name>` (a skill of the session's "
        "agent): the skill whose SKILL.md went into the turn with this message.",
    )

    @classmethod
    def text(cls, text: str) -> UserMessage:
        return cls(content=[TextBlock(text=text)])


class UserInterrupt(_Body):
    type: Literal["user.interrupt"] = "user.interrupt"
    session_thread_id: str | None = None


class UserToolConfirmation(_Body):
    type: Literal["user.tool_confirmation"] = "user.tool_confirmation"
    tool_use_id: str
    result: Literal["allow", "deny"]
    deny_message: str | None = None
    session_thread_id: str | None = None


class UserCustomToolResult(_Body):
    type: Literal["user.custom_tool_result"] = "user.custom_tool_result"
    custom_tool_use_id: str
    content: list[ContentBlock] = Field(default_factory=list)
    is_error: bool | None = None
    session_thread_id: str | None = None


class AgentMessage(_Body):
    type: Literal["agent.message"] = "agent.message"
    content: list[ContentBlock]

    @classmethod
    def text(cls, text: str) -> AgentMessage:
        return cls(content=[TextBlock(text=text)])


class AgentThinking(_Body):
    type: Literal["agent.thinking"] = "agent.thinking"


class AgentToolUse(_Body):
    type: Literal["agent.tool_use"] = "agent.tool_use"
    name: str
    input: dict[str, JsonValue] = Field(default_factory=dict)
    evaluated_permission: Permission | None = None
    evaluation: PermissionEvaluation | None = None
    session_thread_id: str | None = None


class AgentMcpToolUse(_Body):
    type: Literal["agent.mcp_tool_use"] = "agent.mcp_tool_use"
    name: str
    mcp_server_name: str
    input: dict[str, JsonValue] = Field(default_factory=dict)
    evaluated_permission: Permission | None = None
    evaluation: PermissionEvaluation | None = None
    session_thread_id: str | None = None


class AgentCustomToolUse(_Body):
    type: Literal["agent.custom_tool_use"] = "agent.custom_tool_use"
    name: str
    input: dict[str, JsonValue] = Field(default_factory=dict)
    session_thread_id: str | None = None


class AgentToolResult(_Body):
    type: Literal["agent.tool_result"] = "agent.tool_result"
    tool_use_id: str
    content: list[ContentBlock] = Field(default_factory=list)
    is_error: bool | None = None


class AgentMcpToolResult(_Body):
    type: Literal["agent.mcp_tool_result"] = "agent.mcp_tool_result"
    mcp_tool_use_id: str
    content: list[ContentBlock] = Field(default_factory=list)
    is_error: bool | None = None


class AgentThreadContextCompacted(_Body):
    """Old tool results before `trimmed_before_seq` are trimmed from the conversation (this server's fields)."""

    type: Literal["agent.thread_context_compacted"] = "agent.thread_context_compacted"
    trimmed_before_seq: int | None = None
    estimated_tokens_before: int | None = None


class SessionStatusRunning(_Body):
    type: Literal["session.status_running"] = "session.status_running"


class SessionStatusIdle(_Body):
    type: Literal["session.status_idle"] = "session.status_idle"
    stop_reason: StopReason
    stop_details: dict[str, JsonValue] | None = None

    @classmethod
    def because(cls, stop_type: str, event_ids: list[str] | None = None) -> SessionStatusIdle:
        """Idle for `stop_type`; `event_ids` (requires_action) are stored only when given."""
        reason = StopReason(type=stop_type) if event_ids is None else StopReason(type=stop_type, event_ids=event_ids)
        return cls(stop_reason=reason)


class SessionStatusRescheduled(_Body):
    type: Literal["session.status_rescheduled"] = "session.status_rescheduled"


class SessionStatusTerminated(_Body):
    type: Literal["session.status_terminated"] = "session.status_terminated"


class SessionError(_Body):
    type: Literal["session.error"] = "session.error"
    error: SessionErrorDetail

    @classmethod
    def of(
        cls,
        kind: str,
        message: str,
        retry_status: Literal["retrying", "exhausted", "terminal"],
        *,
        mcp_server_name: str | None = None,
        repository_url: str | None = None,
    ) -> SessionError:
        """The one place a `session.error` is built: its type, message and retry status, and what it concerns."""
        extra = {"mcp_server_name": mcp_server_name, "repository_url": repository_url}
        detail = SessionErrorDetail(
            type=kind,
            message=message,
            retry_status=RetryStatus(type=retry_status),
            **{key: value for key, value in extra.items() if value is not None},
        )
        return cls(error=detail)


class SessionUsage(_Body):
    type: Literal["session.usage"] = "session.usage"
    usage: ModelUsage
    budget: JsonValue = None


class SessionUpdated(_Body):
    type: Literal["session.updated"] = "session.updated"
    agent: JsonValue = None
    budget: JsonValue = None
    metadata: JsonValue = None
    title: JsonValue = None


class SpanModelRequestStart(_Body):
    type: Literal["span.model_request_start"] = "span.model_request_start"


class SpanModelRequestEnd(_Body):
    type: Literal["span.model_request_end"] = "span.model_request_end"
    model_request_start_id: str | None = None
    is_error: bool | None = None
    model_usage: ModelUsage | None = None


KnownEventBody = Annotated[
    UserMessage
    | UserInterrupt
    | UserToolConfirmation
    | UserCustomToolResult
    | AgentMessage
    | AgentThinking
    | AgentToolUse
    | AgentMcpToolUse
    | AgentCustomToolUse
    | AgentToolResult
    | AgentMcpToolResult
    | AgentThreadContextCompacted
    | SessionStatusRunning
    | SessionStatusIdle
    | SessionStatusRescheduled
    | SessionStatusTerminated
    | SessionError
    | SessionUsage
    | SessionUpdated
    | SpanModelRequestStart
    | SpanModelRequestEnd,
    Field(discriminator="type"),
]
"""Every event type the contract names, discriminated on `type`."""


class UnknownEvent(BaseModel):
    """A stored event no model here describes (a newer version's type, or fields that do not fit): readers skip
    it, clients still read it as stored."""

    model_config = ConfigDict(frozen=True)

    type: str
    fields: dict[str, Any]


EventBody = KnownEventBody | UnknownEvent

BODY_TYPES: dict[str, type[_Body]] = {
    model.model_fields["type"].default: model
    for model in (
        UserMessage,
        UserInterrupt,
        UserToolConfirmation,
        UserCustomToolResult,
        AgentMessage,
        AgentThinking,
        AgentToolUse,
        AgentMcpToolUse,
        AgentCustomToolUse,
        AgentToolResult,
        AgentMcpToolResult,
        AgentThreadContextCompacted,
        SessionStatusRunning,
        SessionStatusIdle,
        SessionStatusRescheduled,
        SessionStatusTerminated,
        SessionError,
        SessionUsage,
        SessionUpdated,
        SpanModelRequestStart,
        SpanModelRequestEnd,
    )
}


def stored_fields(body: EventBody) -> dict[str, Any]:
    """The fields a body is stored with: the ones that were set, in declaration order, without `type`."""
    if isinstance(body, UnknownEvent):
        return dict(body.fields)
    return body.model_dump(mode="json", exclude_unset=True, exclude={"type"})


def with_event_id(body: EventBody, event_id: str) -> EventBody:
    """The body, to be stored under `event_id` (chosen before the event existed: a preview already named it)."""
    object.__setattr__(body, "_event_id", event_id)
    return body


def preassigned_id(body: EventBody) -> str | None:
    """The id `with_event_id` gave the body, if any (the store makes one otherwise)."""
    event_id: str | None = getattr(body, "_event_id", None)
    return event_id
