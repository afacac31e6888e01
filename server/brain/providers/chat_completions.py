"""Translation between the neutral conversation and the OpenAI Chat Completions API, both ways; pure (no I/O).

The neutral conversation is the Anthropic-shaped one `server.brain.conversation` builds. Where Chat Completions
differs, the rules: a tool result is a `tool` message of text, right after the call (an error said in the text,
images and PDFs it returned in a `user` message naming the call); an endpoint without `vision` gets a short note
in place of each image and PDF, so a text-only model knows something was there; text-only content is a string
(some servers take nothing else) and nothing empty goes where the API refuses it; blocks are rebuilt from their
known fields, so Anthropic's `cache_control` markers never reach this API (a tool's input and schema are the
model's own data and pass unchanged). `TurnFold` folds the streamed chunks into the `ModelTurn` the loop reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import JsonValue

from server.brain.model import ModelError, ModelTurn, TokenUsage, TurnPreview

if TYPE_CHECKING:
    from openai.types import CompletionUsage
    from openai.types.chat import ChatCompletionChunk
    from openai.types.chat.chat_completion_chunk import ChoiceDelta, ChoiceDeltaToolCall

__all__ = ["TurnFold", "request_messages", "request_tools"]

Block = Mapping[str, Any]
Part = dict[str, Any]
Message = dict[str, Any]

_NO_OUTPUT = "(the tool returned no output)"
_ATTACHED = "(the tool returned attachments; they follow in the next message)"


def request_messages(system: str | None, messages: Sequence[Mapping[str, JsonValue]], *, vision: bool) -> list[Message]:
    """The system prompt and conversation as Chat Completions `messages`."""
    translated: list[Message] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        blocks = _blocks(message.get("content"))
        if message.get("role") == "assistant":
            translated.extend(_assistant(blocks))
        else:
            translated.extend(_user(blocks, vision))
    return translated


def request_tools(tools: Sequence[Mapping[str, JsonValue]]) -> list[Message]:
    """Tool definitions (`{name, description, input_schema}`) as Chat Completions function tools."""
    translated: list[Message] = []
    for tool in tools:
        function: Part = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
        if tool.get("description"):
            function["description"] = tool["description"]
        translated.append({"type": "function", "function": function})
    return translated


def _blocks(content: object) -> list[Block]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content if isinstance(block, Mapping)] if isinstance(content, list) else []


def _assistant(blocks: list[Block]) -> list[Message]:
    text = "".join(str(block.get("text") or "") for block in blocks if block.get("type") == "text")
    calls = [_tool_call(block) for block in blocks if block.get("type") == "tool_use"]
    if not text and not calls:
        return []  # the API refuses an assistant message with neither
    message: Message = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _tool_call(block: Block) -> Part:
    arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
    return {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}


def _user(blocks: list[Block], vision: bool) -> list[Message]:
    """Tool results first (each a `tool` message), then one `user` message with their attachments and the rest."""
    translated: list[Message] = []
    parts: list[Part] = []
    for result in (block for block in blocks if block.get("type") == "tool_result"):
        message, attachments = _tool_result(result, vision)
        translated.append(message)
        parts.extend(attachments)
    for block in blocks:
        if block.get("type") != "tool_result":
            parts.extend(_user_parts(block, vision))
    if parts:
        translated.append({"role": "user", "content": _content(parts)})
    return translated


def _tool_result(result: Block, vision: bool) -> tuple[Message, list[Part]]:
    """The `tool` message, and the images and PDFs it returned (as parts, labelled with the call they came from)."""
    use_id = str(result.get("tool_use_id"))
    texts: list[str] = []
    attachments: list[Part] = []
    for block in _blocks(result.get("content")):
        for part in _user_parts(block, vision):
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                attachments.append(part)
    text = "\n".join(texts) or (_ATTACHED if attachments else _NO_OUTPUT)
    if result.get("is_error"):
        text = f"Error: {text}"
    if attachments:
        kind = "Images" if all(part["type"] == "image_url" for part in attachments) else "Files"
        attachments.insert(0, _text(f"{kind} returned by tool call {use_id}:"))
    return {"role": "tool", "tool_call_id": use_id, "content": text}, attachments


def _user_parts(block: Block, vision: bool) -> list[Part]:
    kind, source = block.get("type"), block.get("source")
    source = source if isinstance(source, Mapping) else {}
    if kind == "text":
        return [_text(str(block["text"]))] if block.get("text") else []
    if kind == "image":
        return [_image(source, vision)]
    if kind == "document":
        return _document(block, source, vision)
    return [_text(f"[a {kind!r} block was left out: this model endpoint does not take it]")]


def _image(source: Block, vision: bool) -> Part:
    if not vision:
        return _text("[an image was left out: this model endpoint takes no images]")
    if source.get("type") == "base64":
        return {"type": "image_url", "image_url": {"url": f"data:{source['media_type']};base64,{source['data']}"}}
    if source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    return _text(f"[an image was left out: its source {source.get('type')!r} cannot be sent to this endpoint]")


def _document(block: Block, source: Block, vision: bool) -> list[Part]:
    title, context = block.get("title"), block.get("context")
    named = f" {title!r}" if title else ""
    parts = [_text(f"Context for the document{named}: {context}")] if context else []
    kind, media_type = source.get("type"), source.get("media_type")
    if kind == "text":
        heading = f"Document{named}:" if title else "Document:"
        return [*parts, _text(f"{heading}\n{source.get('data', '')}")]
    if kind == "url":
        return [*parts, _text(f"[a document{named} at {source.get('url')} (not attached; fetch it to read it)]")]
    if kind == "base64" and media_type == "application/pdf":
        if not vision:
            return [*parts, _text(f"[a PDF document{named} was left out: this model endpoint takes no PDFs]")]
        file = {"filename": title or "document.pdf", "file_data": f"data:application/pdf;base64,{source['data']}"}
        return [*parts, {"type": "file", "file": file}]
    return [*parts, _text(f"[a document{named} ({media_type or kind}) was left out: this endpoint cannot take it]")]


def _text(text: str) -> Part:
    return {"type": "text", "text": text}


def _content(parts: list[Part]) -> str | list[Part]:
    """Text-only content as one string, which every server takes; else the parts."""
    if all(part["type"] == "text" for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


@dataclass
class _Call:
    """A tool call as it streams in: its id and name come first, its arguments in fragments."""

    block: dict[str, JsonValue]
    call_id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list[str])


_STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


class TurnFold:
    """Folds a turn's streamed chunks into its blocks (numbered in the order they appear), stop reason and usage.

    Only the first choice is read (one is asked for). Reasoning (`reasoning_content` or `reasoning`, as DeepSeek,
    vLLM and Ollama send it) leaves a bare thinking block: only that it happened, as with Anthropic."""

    def __init__(self, preview: TurnPreview | None = None) -> None:
        self._preview = preview
        self._blocks: list[dict[str, JsonValue]] = []
        self._text: int | None = None  # the text block's number
        self._thought = False
        self._calls: list[_Call] = []
        self._call_at: dict[int, _Call] = {}  # by the stream's tool call index
        self.finish_reason: str | None = None
        self._usage = TokenUsage()

    def add(self, chunk: ChatCompletionChunk) -> None:
        """Takes one chunk."""
        if chunk.usage is not None:  # the final chunk when `stream_options.include_usage` (some send totals often)
            self._usage = _usage(chunk.usage)
        for choice in chunk.choices:
            if choice.index not in (0, None):
                continue
            self._delta(choice.delta)
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason

    def _delta(self, delta: ChoiceDelta) -> None:
        extra = delta.model_extra or {}
        if any(isinstance(extra.get(key), str) and extra[key] for key in ("reasoning_content", "reasoning")):
            self._think()
        for text in (delta.content, delta.refusal):
            if text:
                self._add_text(text)
        for call in delta.tool_calls or ():
            self._add_call(call)
        if delta.function_call is not None:  # the deprecated single-call form
            function = delta.function_call
            self._fragment(self._calls[0] if self._calls else self._new_call(None), function.name, function.arguments)

    def _think(self) -> None:
        if not self._thought:
            self._thought = True
            self._start({"type": "thinking"}, "thinking")

    def _add_text(self, text: str) -> None:
        if self._text is None:
            self._text = self._start({"type": "text", "text": ""}, "text")
        block = self._blocks[self._text]
        block["text"] = f"{block['text']}{text}"
        if self._preview is not None:
            self._preview.text(self._text, text)

    def _start(self, block: dict[str, JsonValue], kind: Literal["text", "thinking"] | None = None) -> int:
        self._blocks.append(block)
        number = len(self._blocks) - 1
        if self._preview is not None and kind is not None:
            self._preview.block_started(number, kind)
        return number

    def _add_call(self, delta: ChoiceDeltaToolCall) -> None:
        """Fragments join the call at their index; a new id there starts another call (some servers number every
        call 0), and a fragment without an index continues the newest call."""
        index: int | None = delta.index
        known = self._call_at.get(index) if index is not None else (self._calls[-1] if self._calls else None)
        if known is None or (delta.id and known.call_id and delta.id != known.call_id):
            known = self._new_call(index)
        if delta.id and not known.call_id:
            known.call_id = delta.id
        if delta.function is not None:
            self._fragment(known, delta.function.name, delta.function.arguments)

    def _new_call(self, index: int | None) -> _Call:
        call = _Call({"type": "tool_use"})
        self._start(call.block)
        self._calls.append(call)
        if index is not None:
            self._call_at[index] = call
        return call

    @staticmethod
    def _fragment(call: _Call, name: str | None, arguments: str | None) -> None:
        if name and not call.name:  # some servers repeat the name in every fragment
            call.name = name
        if arguments:
            call.arguments.append(arguments)

    def turn(self) -> ModelTurn:
        """The whole turn; `ModelError` when the stream ended early or a tool call's arguments are not JSON."""
        if self.finish_reason is None:
            raise ModelError("model_request_failed_error", "the model's answer ended before it was complete")
        for number, call in enumerate(self._calls):
            call.block["id"] = call.call_id or f"call_{number}"
            call.block["name"] = call.name
            call.block["input"] = _arguments(call, self.finish_reason)
        reason = _STOP_REASONS.get(self.finish_reason, "end_turn")
        if self._calls and reason == "end_turn":  # some local servers say `stop` after tool calls
            reason = "tool_use"
        return ModelTurn(content=list(self._blocks), stop_reason=reason, usage=self._usage)


def _arguments(call: _Call, finish_reason: str) -> dict[str, JsonValue]:
    text = "".join(call.arguments)
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        if finish_reason == "length":
            raise ModelError(
                "invalid_request_error",
                f"the model's answer hit its token limit in the middle of a call to {call.name!r}, so the call "
                "is incomplete; raise max_output_tokens for this model in the providers file, or ask for "
                "smaller steps",
            ) from exc
        raise ModelError(
            "model_request_failed_error", f"the model's call to {call.name!r} had arguments that are not JSON: {exc}"
        ) from exc
    if not isinstance(value, dict):
        raise ModelError(
            "model_request_failed_error", f"the model's call to {call.name!r} had arguments that are not an object"
        )
    return value


def _usage(usage: CompletionUsage) -> TokenUsage:
    """Chat Completions counts cached tokens inside `prompt_tokens`; Anthropic's `input_tokens` leaves them out."""
    details = usage.prompt_tokens_details
    cached = details.cached_tokens if details is not None else None
    if cached is None:  # DeepSeek's own field
        extra = (usage.model_extra or {}).get("prompt_cache_hit_tokens")
        cached = extra if isinstance(extra, int) else 0
    prompt, output = usage.prompt_tokens or 0, usage.completion_tokens or 0
    return TokenUsage(input_tokens=max(0, prompt - cached), output_tokens=output, cache_read_input_tokens=cached)
