"""The OpenAI-compatible client's set-up and error translation: which key goes where, what each failure means.

Errors are the SDK's own exceptions, built as the SDK builds them from a response; requests against a live
endpoint come with the scripted Chat Completions server."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

from server.brain.model import ModelError
from server.brain.providers.chat_completions import TurnFold
from server.brain.providers.openai_compat import NO_KEY, OpenAICompatModel, RequestTarget, _chunk, translate_error
from server.core.models import Endpoint

pytestmark = pytest.mark.anyio

OPENAI = Endpoint("openai", key_present=True)
LOCAL = Endpoint("ollama", base_url="http://127.0.0.1:9/v1")
ROUTER_KEY = "sk-router-0123456789"
GATEWAY = Endpoint("router", "http://127.0.0.1:9/v1", api_key_env="ROUTER_KEY", api_key=ROUTER_KEY, key_present=True)
REQUEST = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


async def turn(client: OpenAICompatModel) -> object:
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    return await client.turn(model="m", system=None, messages=messages, tools=[], max_tokens=10)


def status(cls: type[openai.APIStatusError], code: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    """The SDK's error for a status, as its client makes it (the body's `error` object unwrapped)."""
    response = httpx2.Response(code, headers=headers or {}, request=REQUEST)
    data = body.get("error", body) if isinstance(body, dict) else body
    return cls(f"Error code: {code}", response=response, body=data)


def in_stream(error: dict[str, Any]) -> openai.APIError:
    """The SDK's error for an `{"error": ...}` chunk inside a stream."""
    return openai.APIError(str(error.get("message", "")), REQUEST, body=error)


def translate(exc: Exception, endpoint: Endpoint = GATEWAY, model: str | None = "llama3") -> ModelError:
    return translate_error(exc, RequestTarget(endpoint, "http://127.0.0.1:9/v1", endpoint.api_key or NO_KEY, model))


def message(text: str) -> dict[str, Any]:
    return {"error": {"message": text, "type": "invalid_request_error"}}


# --- set-up ---


async def test_the_built_in_endpoint_without_a_key_says_to_set_openai_api_key() -> None:
    with pytest.raises(ModelError) as raised:
        await turn(OpenAICompatModel(Endpoint("openai", key_present=False)))
    assert raised.value.kind == "configuration_error"
    assert "OPENAI_API_KEY" in str(raised.value)


async def test_a_declared_endpoint_whose_key_variable_is_unset_names_it() -> None:
    endpoint = Endpoint("router", base_url="http://127.0.0.1:9/v1", api_key_env="ROUTER_KEY")
    with pytest.raises(ModelError) as raised:
        await OpenAICompatModel(endpoint).list_models()
    assert raised.value.kind == "configuration_error"
    assert "ROUTER_KEY" in str(raised.value)


async def test_a_declared_endpoint_never_gets_openai_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-mine")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-mine")
    for endpoint, key in ((LOCAL, NO_KEY), (GATEWAY, ROUTER_KEY)):
        client = OpenAICompatModel(endpoint)
        sdk = client._sdk()
        assert (sdk.api_key, str(sdk.base_url)) == (key, "http://127.0.0.1:9/v1/")
        assert (sdk.organization, sdk.project) == (None, None)
        await client.aclose()


async def test_the_built_in_endpoint_takes_the_sdks_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/openai")
    client = OpenAICompatModel(OPENAI)
    sdk = client._sdk()
    assert (sdk.api_key, str(sdk.base_url)) == ("sk-openai-secret", "http://127.0.0.1:9/openai/")
    await client.aclose()


async def test_an_endpoint_that_does_not_answer_is_a_retryable_failure_naming_it() -> None:
    client = OpenAICompatModel(LOCAL)  # nothing listens on port 9
    with pytest.raises(ModelError) as raised:
        await turn(client)
    await client.aclose()
    assert raised.value.retryable
    assert "'ollama'" in str(raised.value)
    assert "http://127.0.0.1:9/v1" in str(raised.value)


# --- errors ---


def test_a_rate_limit_is_retried_after_what_it_asks() -> None:
    error = translate(status(openai.RateLimitError, 429, message("slow down"), {"retry-after": "3"}))
    assert (error.kind, error.retryable, error.retry_after_s) == ("model_rate_limited_error", True, 3)
    assert "slow down" in str(error)


def test_an_account_out_of_quota_is_a_billing_error_not_retried_though_it_comes_as_a_429() -> None:
    body = {"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota"}}
    for exc in (
        status(openai.RateLimitError, 429, body | {"error": body["error"] | {"code": "insufficient_quota"}}),
        status(openai.RateLimitError, 429, body, {"retry-after": "3"}),
        in_stream({"message": "You exceeded your current quota.", "code": "insufficient_quota"}),
    ):
        error = translate(exc)
        assert (error.kind, error.retryable, error.retry_after_s) == ("billing_error", False, None)
        assert "out of quota" in str(error)
        assert "billing" in str(error)
        assert "'router'" in str(error)
        assert "You exceeded your current quota." in str(error)


@pytest.mark.parametrize("code", [500, 502, 503])
def test_a_server_error_is_retried(code: int) -> None:
    error = translate(status(openai.InternalServerError, code, message("boom")))
    assert (error.kind, error.retryable) == ("model_request_failed_error", True)


@pytest.mark.parametrize(
    "exc",
    [
        openai.APIConnectionError(request=REQUEST),
        openai.APITimeoutError(request=REQUEST),
        httpx2.RemoteProtocolError("peer closed connection without sending complete message body"),
    ],
)
def test_a_connection_failure_timeout_or_dropped_stream_is_retried(exc: Exception) -> None:
    error = translate(exc)
    assert (error.kind, error.retryable) == ("model_request_failed_error", True)
    assert "'router'" in str(error)


def test_an_unreadable_stream_is_retried() -> None:
    error = translate(ValueError("Expecting value: line 1 column 1 (char 0)"))
    assert (error.kind, error.retryable) == ("model_request_failed_error", True)


@pytest.mark.parametrize(
    ("endpoint", "hint"),
    [
        (OPENAI, "OPENAI_API_KEY"),
        (GATEWAY, "ROUTER_KEY"),
        (LOCAL, "api_key_env in [endpoints.ollama]"),
    ],
)
@pytest.mark.parametrize(("cls", "code"), [(openai.AuthenticationError, 401), (openai.PermissionDeniedError, 403)])
def test_refused_credentials_say_which_variable_to_check(
    endpoint: Endpoint, hint: str, cls: type[openai.APIStatusError], code: int
) -> None:
    error = translate(status(cls, code, message("invalid key")), endpoint)
    assert (error.kind, error.retryable) == ("authentication_error", False)
    assert hint in str(error)


def test_a_key_the_endpoint_echoes_back_is_masked() -> None:
    error = translate(status(openai.AuthenticationError, 401, message(f"bad key {ROUTER_KEY}")))
    assert ROUTER_KEY not in str(error)
    assert "********" in str(error)


def test_an_unknown_model_names_it_and_the_endpoint() -> None:
    error = translate(status(openai.NotFoundError, 404, {"error": "model 'llama3' not found, try pulling it first"}))
    assert (error.kind, error.retryable) == ("model_not_found_error", False)
    assert "'llama3'" in str(error)
    assert "'router'" in str(error)
    assert "try pulling it first" in str(error)


def test_no_model_list_points_at_the_base_url() -> None:
    error = translate(status(openai.NotFoundError, 404, "404 page not found"), model=None)
    assert error.kind == "model_not_found_error"
    assert "base_url" in str(error)


@pytest.mark.parametrize(
    "detail",
    [
        "registry.ollama.ai/library/gemma:2b does not support tools",  # Ollama
        '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',  # vLLM
        "tools param requires --jinja flag",  # llama.cpp
    ],
)
def test_a_model_without_tool_calls_says_what_to_do(detail: str) -> None:
    error = translate(status(openai.BadRequestError, 400, message(detail)))
    assert (error.kind, error.retryable) == ("invalid_request_error", False)
    assert "does not support tool calls" in str(error)
    assert "pick a model with tool calling" in str(error)
    assert detail in str(error)


@pytest.mark.parametrize(
    ("cls", "code", "detail"),
    [
        (openai.BadRequestError, 400, "messages with role 'tool' must be a response to a preceding 'tool_calls'"),
        (openai.BadRequestError, 400, "context length exceeded"),
        (openai.UnprocessableEntityError, 422, "field required"),
        (openai.APIStatusError, 413, "request too large"),
    ],
)
def test_other_refusals_are_not_retried(cls: type[openai.APIStatusError], code: int, detail: str) -> None:
    error = translate(status(cls, code, {"detail": detail}))
    assert (error.kind, error.retryable) == ("invalid_request_error", False)
    assert detail in str(error)
    assert "tool calls" not in str(error)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"message": "overloaded", "type": "server_error"}, "model_request_failed_error"),
        ({"message": "boom", "code": 502}, "model_request_failed_error"),
        ({"message": "slow down", "code": "rate_limit_exceeded"}, "model_rate_limited_error"),
        ({"message": "too many", "code": 429}, "model_rate_limited_error"),
        ({"message": "bad input", "type": "invalid_request_error"}, "invalid_request_error"),
        ({"message": "no such model", "code": "model_not_found"}, "model_not_found_error"),
        ({"message": "bad key", "type": "authentication_error"}, "authentication_error"),
        ({"message": "???"}, "model_request_failed_error"),
    ],
)
def test_an_error_inside_the_stream_is_sorted_by_its_code_or_type(error: dict[str, Any], kind: str) -> None:
    translated = translate(in_stream(error))
    assert translated.kind == kind
    assert str(error["message"]) in str(translated)


# --- chunks ---


def test_chunks_a_compatible_server_cuts_short_are_still_read_as_the_sdk_reads_them() -> None:
    """No id, model, created, object, choice index or tool call index: validation refuses them, the SDK's way
    of building them does not."""
    fold = TurnFold()
    call = {"id": "call_1", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}
    fold.add(_chunk({"choices": [{"delta": {"content": "Hi", "tool_calls": [call]}}]}))
    fold.add(_chunk({"choices": [{"delta": {}, "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 3}}))
    turn = fold.turn()
    assert turn.content == [
        {"type": "text", "text": "Hi"},
        {"type": "tool_use", "id": "call_1", "name": "bash", "input": {"command": "ls"}},
    ]
    assert (turn.stop_reason, turn.usage.input_tokens) == ("tool_use", 3)


def test_a_chunk_that_is_not_an_object_is_an_unreadable_answer_retried() -> None:
    with pytest.raises(ValueError, match="not a JSON object") as raised:
        _chunk(["not", "a", "chunk"])
    error = translate(raised.value)
    assert (error.kind, error.retryable) == ("model_request_failed_error", True)
