"""The model's conversation rebuilt from an event log: grouping, tool results, pending uses."""

from __future__ import annotations

import itertools
from typing import Any

from server.brain.conversation import TRIMMED, ConversationBuilder, estimated_tokens, needs_action, rebuild
from server.core.events import Event

_seq = itertools.count(1)


def event(event_type: str, event_id: str | None = None, **payload: Any) -> Event:
    seq = next(_seq)
    return Event.model_validate(
        {**payload, "id": event_id or f"sevt_{seq:026d}", "seq": seq, "type": event_type, "processed_at": "t"}
    )


def text(value: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": value}]


def test_a_plain_exchange_alternates_user_and_assistant() -> None:
    log = [
        event("user.message", content=text("hi")),
        event("session.status_running"),
        event("span.model_request_start"),
        event("agent.message", content=text("hello")),
        event("span.model_request_end"),
        event("session.status_idle", stop_reason={"type": "end_turn"}),
        event("user.message", content=text("again")),
    ]
    conversation = rebuild(log)
    assert conversation.messages == [
        {"role": "user", "content": text("hi")},
        {"role": "assistant", "content": text("hello")},
        {"role": "user", "content": text("again")},
    ]
    assert conversation.pending == []


def test_tool_uses_take_their_event_ids_and_results_follow_in_one_user_message() -> None:
    log = [
        event("user.message", content=text("list files")),
        event("span.model_request_start"),
        event("agent.message", content=text("Looking.")),
        event("agent.tool_use", "sevt_A", name="bash", input={"command": "ls"}, evaluated_permission="allow"),
        event("agent.tool_use", "sevt_B", name="read", input={"file_path": "x"}, evaluated_permission="allow"),
        event("agent.tool_result", tool_use_id="sevt_A", content=text("x"), is_error=False),
        event("agent.tool_result", tool_use_id="sevt_B", content=text("no such file"), is_error=True),
        event("span.model_request_start"),
        event("agent.message", content=text("Done.")),
    ]
    messages = rebuild(log).messages
    assert messages[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "sevt_A", "name": "bash", "input": {"command": "ls"}},
            {"type": "tool_use", "id": "sevt_B", "name": "read", "input": {"file_path": "x"}},
        ],
    }
    assert messages[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "sevt_A", "content": text("x")},
            {"type": "tool_result", "tool_use_id": "sevt_B", "content": text("no such file"), "is_error": True},
        ],
    }
    assert messages[3] == {"role": "assistant", "content": text("Done.")}


def test_uses_without_results_are_pending_and_say_what_the_client_must_do() -> None:
    log = [
        event("user.message", content=text("go")),
        event("span.model_request_start"),
        event("agent.tool_use", "sevt_ask", name="bash", input={"command": "rm x"}, evaluated_permission="ask"),
        event("agent.custom_tool_use", "sevt_custom", name="lookup", input={"id": 1}),
        event("agent.tool_use", "sevt_run", name="read", input={}, evaluated_permission="allow"),
    ]
    conversation = rebuild(log)
    assert [p.event_id for p in conversation.pending] == ["sevt_ask", "sevt_custom", "sevt_run"]
    assert needs_action(conversation.pending) == ["sevt_ask", "sevt_custom"]

    confirmed = rebuild(
        [*log, event("user.tool_confirmation", tool_use_id="sevt_ask", result="deny", deny_message="no")]
    )
    ask = confirmed.pending[0]
    assert (ask.confirmation, ask.deny_message) == ("deny", "no")
    assert needs_action(confirmed.pending) == ["sevt_custom"]


def test_a_result_for_an_unknown_or_answered_use_is_ignored() -> None:
    log = [
        event("user.message", content=text("go")),
        event("span.model_request_start"),
        event("agent.tool_use", "sevt_A", name="bash", input={}, evaluated_permission="allow"),
        event("agent.tool_result", tool_use_id="sevt_A", content=text("1")),
        event("agent.tool_result", tool_use_id="sevt_A", content=text("again")),
        event("agent.tool_result", tool_use_id="sevt_nope", content=text("stray")),
    ]
    messages = rebuild(log).messages
    results = [b for m in messages for b in m["content"] if b["type"] == "tool_result"]  # type: ignore[union-attr,index]
    assert results == [{"type": "tool_result", "tool_use_id": "sevt_A", "content": text("1")}]


def test_a_compaction_mark_trims_older_tool_results_in_every_rebuild() -> None:
    log = [event("user.message", content=text("go"))]
    for name in ("A", "B", "C"):
        log += [
            event("span.model_request_start"),
            event("agent.tool_use", f"sevt_{name}", name="bash", input={}, evaluated_permission="allow"),
            event("agent.tool_result", tool_use_id=f"sevt_{name}", content=text(name * 1000)),
        ]
    mark = log[-1].seq  # trim everything before the newest result
    conversation = rebuild([*log, event("agent.thread_context_compacted", trimmed_before_seq=mark)])
    results = [b for m in conversation.messages for b in m["content"] if b["type"] == "tool_result"]  # type: ignore[union-attr,index]
    assert [r["content"] for r in results] == [text(TRIMMED), text(TRIMMED), text("C" * 1000)]
    assert estimated_tokens(conversation.messages) < estimated_tokens(rebuild(log).messages)


def test_a_message_sent_during_a_request_follows_its_answer_even_if_the_request_never_ended() -> None:
    during = [
        event("user.message", content=text("first")),
        event("span.model_request_start"),
        event("user.message", content=text("while thinking")),
        event("agent.message", content=text("answer")),
        event("span.model_request_end"),
    ]
    assert [m["role"] for m in rebuild(during).messages] == ["user", "assistant", "user"]
    abandoned = [
        event("user.message", content=text("first")),
        event("span.model_request_start"),  # interrupted: no end
        event("user.message", content=text("later")),
        event("span.model_request_start"),
        event("agent.message", content=text("answer")),
        event("span.model_request_end"),
    ]
    messages = rebuild(abandoned).messages
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == text("first") + text("later")


def test_a_builder_fed_one_event_at_a_time_matches_a_rebuild_at_every_step() -> None:
    """The running loop folds each event once and asks for the conversation between events: asking
    must not change what the later events build, and what it hands out is the caller's to change."""
    log = [
        event("user.message", content=text("go")),
        event("span.model_request_start"),
        event("user.message", content=text("sent while it thinks")),
        event("agent.tool_use", "sevt_A", name="bash", input={"command": "ls"}, evaluated_permission="allow"),
        event("agent.tool_use", "sevt_B", name="write", input={}, evaluated_permission="ask"),
        event("span.model_request_end"),
        event("agent.tool_result", tool_use_id="sevt_A", content=text("A" * 500)),
        event("user.tool_confirmation", tool_use_id="sevt_B", result="deny", deny_message="no"),
        event("agent.tool_result", tool_use_id="sevt_B", content=text("no"), is_error=True),
        event("span.model_request_start"),  # never ends: the message after it still counts
        event("user.message", content=text("are you there?")),
        event("span.model_request_start"),
        event("agent.custom_tool_use", "sevt_C", name="lookup", input={"q": 1}),
        event("span.model_request_end"),
        event("user.custom_tool_result", custom_tool_use_id="sevt_C", content=text("C" * 500)),
    ]
    log.append(event("agent.thread_context_compacted", trimmed_before_seq=log[-1].seq))
    log += [
        event("span.model_request_start"),
        event("agent.message", content=text("done")),
        event("span.model_request_end"),
    ]
    builder = ConversationBuilder()
    for index, item in enumerate(log, start=1):
        builder.add(item)
        step = builder.conversation()
        assert step == rebuild(log[:index]), f"after event {index} ({item.type})"
        assert builder.last_seq == item.seq
        for message in step.messages:  # the snapshot is the caller's: changing it changes nothing
            message["content"].clear()  # type: ignore[union-attr]
        step.pending.clear()
    final = builder.conversation()
    assert final == rebuild(log)
    results = [b for m in final.messages for b in m["content"] if b["type"] == "tool_result"]  # type: ignore[union-attr,index]
    assert [r["content"] for r in results] == [text(TRIMMED), text(TRIMMED), text("C" * 500)]
    assert [m["role"] for m in final.messages] == ["user", "assistant", "user", "assistant", "user", "assistant"]
