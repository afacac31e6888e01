"""Rebuilding the model's conversation from a session's event log.

The log, not memory, is what a turn is built from, so a session picks up
exactly where it was after a restart. The rules:

- `user.message` content becomes user content; consecutive user-side content
  (messages, tool results) merges into one user message, as the API wants.
- The content events of one model response (`agent.message`, `agent.tool_use`,
  `agent.custom_tool_use`, `agent.mcp_tool_use`) form one assistant message; a
  `span.model_request_start` begins the next one.
- An `agent.mcp_tool_use` records the tool's bare name and its `mcp_server_name`; its
  tool_use block carries the model-facing name (`mcp_tool_name`), so a rebuilt request
  names the tool exactly as the model called it.
- Tool uses are identified by their event ids (`sevt_...`), which are valid
  tool_use ids for the API and stable across restarts; results
  (`agent.tool_result`, `agent.mcp_tool_result`, `user.custom_tool_result`)
  point at them.
- An `agent.thread_context_compacted` event with `trimmed_before_seq` replaces
  the content of every tool result recorded before that seq with a short
  marker: how a long session stays within the model's window, decided once
  and recorded, so every later rebuild trims the same way.
- A tool use with no result yet is *pending*. `pending_tool_uses` lists them,
  so the loop can ask for confirmations, wait for custom results, or (after a
  crash) answer them with an "interrupted" error instead of re-running them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, assert_never

from pydantic import JsonValue

from server.brain.tools import mcp_tool_name
from server.core.content import ContentBlock, TextBlock
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
    SessionError,
    SessionStatusIdle,
    SessionStatusRescheduled,
    SessionStatusRunning,
    SessionStatusTerminated,
    SessionUpdated,
    SessionUsage,
    SpanModelRequestEnd,
    SpanModelRequestStart,
    UnknownEvent,
    UserCustomToolResult,
    UserInterrupt,
    UserMessage,
    UserToolConfirmation,
)
from server.core.skills import SKILL_FILE, SKILLS_ROOT, InvokedSkill

__all__ = [
    "TRIMMED",
    "Conversation",
    "ConversationBuilder",
    "PendingToolUse",
    "estimated_tokens",
    "needs_action",
    "rebuild",
]

Message = dict[str, JsonValue]
ToolUseKind = Literal["agent.tool_use", "agent.custom_tool_use", "agent.mcp_tool_use"]

ToolUse = AgentToolUse | AgentCustomToolUse | AgentMcpToolUse


@dataclass(frozen=True)
class PendingToolUse:
    """A tool use the log holds no result for."""

    event_id: str
    kind: ToolUseKind
    name: str
    input: dict[str, JsonValue]
    evaluated_permission: str | None
    confirmation: Literal["allow", "deny"] | None = None
    deny_message: str | None = None
    server_name: str | None = None
    """`agent.mcp_tool_use`: the remote server; `name` is then the tool's bare name."""


@dataclass
class Conversation:
    messages: list[Message] = field(default_factory=list)
    pending: list[PendingToolUse] = field(default_factory=list)
    result_seqs: dict[str, int] = field(default_factory=dict)
    """The seq of each tool result's event, by tool use id (where trimming can start)."""


def rebuild(events: Iterable[Event]) -> Conversation:
    """The conversation so far, and the tool uses still waiting for a result."""
    builder = ConversationBuilder()
    builder.extend(events)
    return builder.conversation()


class ConversationBuilder:
    """Folds a log into the conversation one event at a time, so a running session reads each event once.

    `conversation()` may be called after any event; it does not change what later events build."""

    def __init__(self) -> None:
        self._messages: list[Message] = []
        self._open_uses: dict[str, PendingToolUse] = {}
        self._new_response = True
        self._in_flight = False
        self._arrived_during_request: list[JsonValue] = []
        self._trimmed_before_seq = 0
        self._result_seqs: dict[str, int] = {}
        self.last_seq = 0
        """The seq of the newest event added (0 before any)."""

    def extend(self, events: Iterable[Event]) -> None:
        for event in events:
            self.add(event)

    def add(self, event: Event) -> None:
        self.last_seq = event.seq
        match event.body:
            case SpanModelRequestStart():
                self._flush_arrivals()  # a request that never ended (interrupted, crashed) ends here
                self._new_response, self._in_flight = True, True
            case SpanModelRequestEnd():
                self._in_flight = False
                self._flush_arrivals()
            case UserMessage(content=content, skill=skill):
                blocks = _blocks(content) if skill is None else [_skill_block(skill), *_blocks(content)]
                if self._in_flight:  # sent while the model was answering: it comes after that answer
                    self._arrived_during_request.extend(blocks)
                else:
                    _add(self._messages, "user", blocks)
            case AgentMessage(content=content):
                self._assistant(_text_block(content))
            case AgentToolUse() | AgentCustomToolUse() | AgentMcpToolUse() as use:
                self._assistant(_tool_use_block(event.id, use))
                self._open_uses[event.id] = _pending(event.id, use)
            case (
                AgentToolResult(tool_use_id=use_id)
                | AgentMcpToolResult(mcp_tool_use_id=use_id)
                | UserCustomToolResult(custom_tool_use_id=use_id)
            ) as result:
                self._result(event.seq, use_id, result)
            case UserToolConfirmation() as confirmation:
                _confirm(self._open_uses, confirmation)
            case AgentThreadContextCompacted(trimmed_before_seq=mark):
                if mark is not None and mark > self._trimmed_before_seq:
                    self._trimmed_before_seq = mark
                    # Later results have later seqs than the mark, so trimming what is here now is enough.
                    _trim_results(self._messages, self._result_seqs, mark)
            case (
                UserInterrupt()
                | AgentThinking()
                | SessionStatusRunning()
                | SessionStatusIdle()
                | SessionStatusRescheduled()
                | SessionStatusTerminated()
                | SessionError()
                | SessionUsage()
                | SessionUpdated()
                | UnknownEvent()
            ):
                pass  # not part of the conversation
            case _:
                assert_never(event.body)

    def _result(
        self, seq: int, use_id: str, result: AgentToolResult | AgentMcpToolResult | UserCustomToolResult
    ) -> None:
        if self._open_uses.pop(use_id, None) is not None:
            self._result_seqs[use_id] = seq
            _add(self._messages, "user", [_result_block(use_id, result)])

    def conversation(self) -> Conversation:
        """The conversation as of the newest event; the messages are the caller's to change."""
        messages = [{**m, "content": list(m["content"])} for m in self._messages]  # type: ignore[arg-type]
        if self._arrived_during_request:  # a request that never ended (the server stopped): the message counts
            _add(messages, "user", list(self._arrived_during_request))
        return Conversation(messages, list(self._open_uses.values()), dict(self._result_seqs))

    def _assistant(self, block: JsonValue) -> None:
        messages = self._messages
        if self._new_response or not messages or messages[-1]["role"] != "assistant":
            messages.append({"role": "assistant", "content": [block]})
            self._new_response = False
        else:
            content = messages[-1]["content"]
            assert isinstance(content, list)
            content.append(block)

    def _flush_arrivals(self) -> None:
        if self._arrived_during_request:
            _add(self._messages, "user", self._arrived_during_request)
            self._arrived_during_request = []


def _add(messages: list[Message], role: Literal["user", "assistant"], blocks: list[JsonValue]) -> None:
    if messages and messages[-1]["role"] == role:
        previous = messages[-1]["content"]
        assert isinstance(previous, list)
        previous.extend(blocks)
        # The API wants a user message's tool results before its other blocks (a message can arrive
        # while a tool runs).
        previous.sort(key=lambda b: not (isinstance(b, dict) and b.get("type") == "tool_result"))
    else:
        messages.append({"role": role, "content": list(blocks)})


TRIMMED = "[trimmed to keep the conversation within the model's context; the full result is in the event log]"


def _trim_results(messages: list[Message], result_seqs: dict[str, int], before_seq: int) -> None:
    """Replaces the content of tool results recorded before `before_seq` with a short marker."""
    for message in messages:
        content = message["content"]
        if message["role"] != "user" or not isinstance(content, list):
            continue
        for index, block in enumerate(content):
            if (
                isinstance(block, dict)
                and block.get("type") == "tool_result"
                and result_seqs.get(str(block.get("tool_use_id")), before_seq) < before_seq
            ):
                content[index] = {**block, "content": [{"type": "text", "text": TRIMMED}]}


IMAGE_TOKENS = 1_600
"""What an image is counted as: about what a large image costs on Anthropic's and OpenAI's models alike (its
base64 length says nothing about it)."""


def estimated_tokens(messages: Sequence[Message]) -> int:
    """A cheap estimate to decide when to trim, not to bill, and no provider's tokenizer: about four characters a
    token (English and code on every current tokenizer), an image a flat `IMAGE_TOKENS`."""
    images = 0

    def without_images(value: JsonValue) -> JsonValue:
        nonlocal images
        if isinstance(value, list):
            return [without_images(item) for item in value]
        if not isinstance(value, dict):
            return value
        if value.get("type") == "image":
            images += 1
            return None
        return {key: without_images(item) for key, item in value.items()}

    text = json.dumps([without_images(dict(message)) for message in messages])
    return len(text) // 4 + images * IMAGE_TOKENS


def _blocks(content: list[ContentBlock]) -> list[JsonValue]:
    return [block.model_dump(mode="json", exclude_unset=True) for block in content]


def _skill_block(skill: InvokedSkill) -> JsonValue:
    """The SKILL.md of the skill a message invoked (`/name`), ahead of the message's own blocks."""
    text = (
        f'<skill name="{skill.name}" path="{SKILLS_ROOT}/{skill.name}/{SKILL_FILE}">\n'
        f"The user invoked the skill {skill.name!r}; follow its instructions (its files are in "
        f"{SKILLS_ROOT}/{skill.name}/):\n\n{skill.instructions}\n</skill>"
    )
    return {"type": "text", "text": text}


def _text_block(content: list[ContentBlock]) -> JsonValue:
    return {"type": "text", "text": "".join(block.text for block in content if isinstance(block, TextBlock))}


def _tool_use_block(event_id: str, use: ToolUse) -> JsonValue:
    name = mcp_tool_name(use.mcp_server_name, use.name) if isinstance(use, AgentMcpToolUse) else use.name
    return {"type": "tool_use", "id": event_id, "name": name, "input": dict(use.input)}


def _result_block(use_id: str, result: AgentToolResult | AgentMcpToolResult | UserCustomToolResult) -> JsonValue:
    block: dict[str, JsonValue] = {"type": "tool_result", "tool_use_id": use_id, "content": _blocks(result.content)}
    if result.is_error:
        block["is_error"] = True
    return block


def _pending(event_id: str, use: ToolUse) -> PendingToolUse:
    return PendingToolUse(
        event_id=event_id,
        kind=use.type,
        name=use.name,
        input=dict(use.input),
        evaluated_permission=None if isinstance(use, AgentCustomToolUse) else use.evaluated_permission,
        server_name=use.mcp_server_name if isinstance(use, AgentMcpToolUse) else None,
    )


def _confirm(open_uses: dict[str, PendingToolUse], confirmation: UserToolConfirmation) -> None:
    use = open_uses.get(confirmation.tool_use_id)
    if use is None:
        return
    open_uses[use.event_id] = replace(use, confirmation=confirmation.result, deny_message=confirmation.deny_message)


def needs_action(pending: Sequence[PendingToolUse]) -> list[str]:
    """Event ids the client must act on: unconfirmed `ask` uses and custom tool uses."""
    return [
        use.event_id
        for use in pending
        if use.kind == "agent.custom_tool_use" or (use.evaluated_permission == "ask" and use.confirmation is None)
    ]
