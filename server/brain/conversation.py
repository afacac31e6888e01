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
from typing import Literal

from pydantic import JsonValue

from server.brain.tools import mcp_tool_name
from server.core.events import Event

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

_ASSISTANT_TYPES = frozenset({"agent.message", "agent.tool_use", "agent.custom_tool_use", "agent.mcp_tool_use"})
_RESULT_TYPES = {
    "agent.tool_result": "tool_use_id",
    "agent.mcp_tool_result": "mcp_tool_use_id",
    "user.custom_tool_result": "custom_tool_use_id",
}


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
        payload = event.payload()
        if event.type == "span.model_request_start":
            self._flush_arrivals()  # a request that never ended (interrupted, crashed) ends here
            self._new_response, self._in_flight = True, True
        elif event.type == "span.model_request_end":
            self._in_flight = False
            self._flush_arrivals()
        elif event.type == "user.message":
            if self._in_flight:  # sent while the model was answering: it comes after that answer
                self._arrived_during_request.extend(_blocks(payload.get("content")))
            else:
                _add(self._messages, "user", _blocks(payload.get("content")))
        elif event.type in _ASSISTANT_TYPES:
            self._assistant(event)
        elif event.type in _RESULT_TYPES:
            use_id = str(payload.get(_RESULT_TYPES[event.type], ""))
            if self._open_uses.pop(use_id, None) is not None:
                self._result_seqs[use_id] = event.seq
                _add(self._messages, "user", [_result_block(use_id, payload)])
        elif event.type == "user.tool_confirmation":
            _confirm(self._open_uses, payload)
        elif event.type == "agent.thread_context_compacted":
            mark = payload.get("trimmed_before_seq")
            if isinstance(mark, int) and mark > self._trimmed_before_seq:
                self._trimmed_before_seq = mark
                # Later results have later seqs than the mark, so trimming what is here now is enough.
                _trim_results(self._messages, self._result_seqs, mark)

    def conversation(self) -> Conversation:
        """The conversation as of the newest event; the messages are the caller's to change."""
        messages = [{**m, "content": list(m["content"])} for m in self._messages]  # type: ignore[arg-type]
        if self._arrived_during_request:  # a request that never ended (the server stopped): the message counts
            _add(messages, "user", list(self._arrived_during_request))
        return Conversation(messages, list(self._open_uses.values()), dict(self._result_seqs))

    def _assistant(self, event: Event) -> None:
        block = _assistant_block(event)
        messages = self._messages
        if self._new_response or not messages or messages[-1]["role"] != "assistant":
            messages.append({"role": "assistant", "content": [block]})
            self._new_response = False
        else:
            content = messages[-1]["content"]
            assert isinstance(content, list)
            content.append(block)
        if event.type != "agent.message":
            self._open_uses[event.id] = _pending(event)

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


def estimated_tokens(messages: Sequence[Message]) -> int:
    """A cheap estimate (about four characters a token) to decide when to trim, not to bill."""
    return len(json.dumps(messages)) // 4


def _blocks(content: JsonValue) -> list[JsonValue]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content) if isinstance(content, list) else []


def _assistant_block(event: Event) -> JsonValue:
    payload = event.payload()
    if event.type == "agent.message":
        texts = [b.get("text", "") for b in _blocks(payload.get("content")) if isinstance(b, dict)]
        return {"type": "text", "text": "".join(str(t) for t in texts)}
    name = str(payload.get("name", ""))
    if event.type == "agent.mcp_tool_use":
        name = mcp_tool_name(str(payload.get("mcp_server_name", "")), name)
    return {"type": "tool_use", "id": event.id, "name": name, "input": payload.get("input", {})}


def _result_block(use_id: str, payload: dict[str, JsonValue]) -> JsonValue:
    block: dict[str, JsonValue] = {"type": "tool_result", "tool_use_id": use_id, "content": payload.get("content", [])}
    if payload.get("is_error"):
        block["is_error"] = True
    return block


def _pending(event: Event) -> PendingToolUse:
    payload = event.payload()
    tool_input = payload.get("input")
    permission = payload.get("evaluated_permission")
    server = payload.get("mcp_server_name")
    return PendingToolUse(
        event_id=event.id,
        kind=event.type,  # type: ignore[arg-type]  # one of _ASSISTANT_TYPES minus agent.message
        name=str(payload.get("name", "")),
        input=tool_input if isinstance(tool_input, dict) else {},
        evaluated_permission=str(permission) if permission is not None else None,
        server_name=str(server) if event.type == "agent.mcp_tool_use" and server is not None else None,
    )


def _confirm(open_uses: dict[str, PendingToolUse], payload: dict[str, JsonValue]) -> None:
    use = open_uses.get(str(payload.get("tool_use_id", "")))
    result = payload.get("result")
    if use is None or result not in ("allow", "deny"):
        return
    message = payload.get("deny_message")
    open_uses[use.event_id] = replace(
        use,
        confirmation="allow" if result == "allow" else "deny",
        deny_message=str(message) if message is not None else None,
    )


def needs_action(pending: Sequence[PendingToolUse]) -> list[str]:
    """Event ids the client must act on: unconfirmed `ask` uses and custom tool uses."""
    return [
        use.event_id
        for use in pending
        if use.kind == "agent.custom_tool_use" or (use.evaluated_permission == "ask" and use.confirmation is None)
    ]
