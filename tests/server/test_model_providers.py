"""Which provider runs a model id: the providers file, per-model windows, and refusals at create time."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_sandboxes import FakeSandboxes
from scenario import call_error, call_ok
from serving import connected

from server.core.config import ServerConfig
from server.core.errors import InvalidRequestError
from server.core.models import ModelLimits, ModelRef, load_providers, parse_providers, split_model_id

PROVIDERS = """
[endpoints.ollama]
base_url = "http://127.0.0.1:11434/v1/"
context_tokens = 8000
vision = false

[endpoints.router]
base_url = "https://gateway.example.net/api/v1"
api_key_env = "ROUTER_KEY"

[models."openai/gpt-4o-mini"]
context_tokens = 128000
max_output_tokens = 4000

[models."ollama/big"]
context_tokens = 32000
"""


def written(tmp_path: Path, text: str = PROVIDERS) -> Path:
    path = tmp_path / "providers.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("model_id", "ref"),
    [
        ("claude-sonnet-5-5", ModelRef("anthropic", "claude-sonnet-5-5")),
        ("anthropic/claude-sonnet-5-5", ModelRef("anthropic", "claude-sonnet-5-5")),
        ("openai/gpt-4o-mini", ModelRef("openai", "gpt-4o-mini")),
        ("router/meta-llama/llama-3-8b", ModelRef("router", "meta-llama/llama-3-8b")),
        ("ollama/qwen2.5-coder:7b", ModelRef("ollama", "qwen2.5-coder:7b")),
    ],
)
def test_a_model_id_splits_at_its_first_slash(model_id: str, ref: ModelRef) -> None:
    assert split_model_id(model_id) == ref


def test_declared_endpoints_and_built_in_providers_are_known_and_others_are_refused_with_the_fix(
    tmp_path: Path,
) -> None:
    path = written(tmp_path)
    providers, problems = load_providers(str(path), {"ROUTER_KEY": "rk-secret-value"}, required=True)
    assert problems == []
    for model_id in ("claude-x", "anthropic/claude-x", "openai/gpt-4o-mini", "ollama/llama3", "router/a/b"):
        providers.check(model_id)
    with pytest.raises(InvalidRequestError) as refused:
        providers.check("mistral/large")
    message = str(refused.value)
    assert "'mistral'" in message
    assert "anthropic, ollama, openai, router" in message
    assert "[endpoints.mistral]" in message
    assert str(path) in message
    with pytest.raises(InvalidRequestError, match="names no model"):
        providers.check("openai/")


def test_an_endpoint_holds_its_own_key_and_never_openais(tmp_path: Path) -> None:
    environ = {"ROUTER_KEY": "rk-secret-value", "OPENAI_API_KEY": "sk-openai-value"}
    providers, _ = load_providers(str(written(tmp_path)), environ, required=True)
    router, ollama = providers.endpoints["router"], providers.endpoints["ollama"]
    assert (router.api_key, router.key_present, router.api_key_env) == ("rk-secret-value", True, "ROUTER_KEY")
    assert (ollama.api_key, ollama.key_present, ollama.vision) == (None, False, False)
    assert ollama.base_url == "http://127.0.0.1:11434/v1"
    assert providers.openai.key_present
    assert providers.openai.api_key is None  # the SDK reads OPENAI_API_KEY itself
    assert "rk-secret-value" not in repr(providers)
    unset, _ = load_providers(str(written(tmp_path)), {}, required=True)
    assert not unset.endpoints["router"].key_present
    assert not unset.openai.key_present


def test_a_models_window_sets_its_budget_and_answer_length(tmp_path: Path) -> None:
    providers, _ = load_providers(str(written(tmp_path)), {}, required=True)
    assert providers.limits("claude-x", 150_000) == ModelLimits(150_000, 16_000)
    assert providers.limits("openai/gpt-4o", 150_000) == ModelLimits(150_000, 16_000)
    assert providers.limits("openai/gpt-4o-mini", 150_000) == ModelLimits(96_000, 4_000)
    assert providers.limits("ollama/small", 150_000) == ModelLimits(6_000, 2_000)  # the endpoint's window
    assert providers.limits("ollama/big", 150_000) == ModelLimits(24_000, 8_000)  # the model's own wins


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[endpoints.openai]\nbase_url = "http://x/v1"', "'openai' is built in"),
        ('[endpoints.anthropic]\nbase_url = "http://x/v1"', "'anthropic' is built in"),
        ('[endpoints.Big]\nbase_url = "http://x/v1"', "lowercase letters"),
        ("[endpoints.local]\ncontext_tokens = 10", "base_url must be an http(s) URL"),
        ('[endpoints.local]\nbase_url = "ftp://x"', "base_url must be an http(s) URL"),
        ('[endpoints.local]\nbase_url = "http://x/v1"\napi_key = "sk-1"', "unknown keys ['api_key']"),
        ('[endpoints.local]\nbase_url = "http://x/v1"\napi_key_env = "not a name"', "api_key_env names"),
        ('[endpoints.local]\nbase_url = "http://x/v1"\ncontext_tokens = 0', "context_tokens is a whole number"),
        ('[endpoints.local]\nbase_url = "http://x/v1"\nvision = "no"', "vision is true or false"),
        ('[models."openai/x"]\ncontext = 5', "unknown keys ['context']"),
        ("[provider]\nx = 1", "unknown section [provider]"),
        ("endpoints = 3", "[endpoints] must be a table"),
        ("[endpoints\n", "cannot be read"),
    ],
)
def test_each_mistake_in_the_providers_file_is_named_with_its_fix(tmp_path: Path, text: str, problem: str) -> None:
    path = written(tmp_path, text)
    _, problems = load_providers(str(path), {}, required=True)
    assert len(problems) == 1
    assert problem in problems[0]
    assert str(path) in problems[0]


def test_the_file_is_optional_in_the_data_dir_and_required_where_the_variable_points(tmp_path: Path) -> None:
    config = ServerConfig.from_env({"MANAGED_SESSIONS_DATA_DIR": str(tmp_path)})
    assert config.providers.endpoints == {}
    assert config.problems() == []
    missing = tmp_path / "elsewhere.toml"
    config = ServerConfig.from_env(
        {"MANAGED_SESSIONS_DATA_DIR": str(tmp_path), "MANAGED_SESSIONS_PROVIDERS": str(missing)}
    )
    assert any(str(missing) in problem and "does not exist" in problem for problem in config.problems())
    written(tmp_path)  # <data dir>/providers.toml
    config = ServerConfig.from_env({"MANAGED_SESSIONS_DATA_DIR": str(tmp_path), "MANAGED_SESSIONS_MODEL": "ollama/q"})
    assert set(config.providers.endpoints) == {"ollama", "router"}
    assert config.problems() == []


def test_a_default_model_no_provider_serves_stops_the_server_at_start(tmp_path: Path) -> None:
    config = ServerConfig.from_env({"MANAGED_SESSIONS_DATA_DIR": str(tmp_path), "MANAGED_SESSIONS_MODEL": "nope/x"})
    [problem] = config.problems()
    assert problem.startswith("MANAGED_SESSIONS_MODEL: model 'nope/x': no provider is named 'nope'")


def test_parse_providers_leaves_out_what_cannot_be_used() -> None:
    providers = parse_providers({"endpoints": {"ok": {"base_url": "http://a/v1"}, "bad": {}}}, {})
    assert set(providers.endpoints) == {"ok"}


# --- refused at create time, over MCP -------------------------------------------------------------------------


@pytest.fixture
def providers_config(data_dir: Path, tmp_path: Path) -> ServerConfig:
    providers, problems = load_providers(str(written(tmp_path)), {}, required=True)
    assert problems == []
    return ServerConfig(data_dir=data_dir, model="claude-test-model", providers=providers)


@pytest.mark.anyio
async def test_an_unknown_provider_is_refused_at_create_agent_update_agent_and_create_session(
    providers_config: ServerConfig,
) -> None:
    async with connected(providers_config, sandboxes=lambda _tg: FakeSandboxes()) as client:
        refused = await call_error(client, "create_agent", {"name": "a", "model": "mistral/large"})
        assert "no provider is named 'mistral'" in refused
        assert "[endpoints.mistral]" in refused
        agent = await call_ok(client, "create_agent", {"name": "a", "model": "ollama/qwen2.5-coder:7b"})
        assert agent["model"] == {"id": "ollama/qwen2.5-coder:7b"}
        refused = await call_error(client, "update_agent", {"agent_id": agent["id"], "model": {"id": "x/y"}})
        assert "no provider is named 'x'" in refused
        assert (await call_ok(client, "get_agent", {"agent_id": agent["id"]}))["version"] == 1
        refused = await call_error(client, "create_session", {"model": "mistral/large"})
        assert "no provider is named 'mistral'" in refused
        refused = await call_error(client, "create_session", {"agent_id": agent["id"], "model": "gemini/flash"})
        assert "no provider is named 'gemini'" in refused
        session = await call_ok(client, "create_session", {"model": "openai/gpt-4o-mini"})
        assert session["agent"]["model"] == {"id": "openai/gpt-4o-mini"}
        listed = await call_ok(client, "list_sessions", {})
        assert [s["id"] for s in listed["sessions"]] == [session["id"]]  # the refused ones left nothing behind


@pytest.mark.anyio
async def test_a_stored_agent_whose_endpoint_was_removed_cannot_start_new_sessions(
    providers_config: ServerConfig, data_dir: Path
) -> None:
    async with connected(providers_config, sandboxes=lambda _tg: FakeSandboxes()) as client:
        agent = await call_ok(client, "create_agent", {"name": "a", "model": "router/meta-llama/llama-3-8b"})
    without = ServerConfig(data_dir=data_dir, model="claude-test-model")
    async with connected(without, sandboxes=lambda _tg: FakeSandboxes()) as client:
        refused = await call_error(client, "create_session", {"agent_id": agent["id"]})
        assert "no provider is named 'router'" in refused
        assert (await call_ok(client, "get_agent", {"agent_id": agent["id"]}))["model"]["id"].startswith("router/")
