"""Which provider runs a model id, and what the server knows about that model.

A model id is `<provider>/<model>` or a bare model name:

- a bare id (`claude-sonnet-5-5`) and `anthropic/<model>` run on the Anthropic Messages API;
- `openai/<model>` runs on the OpenAI Chat Completions API, reached as the `openai` SDK reads its settings
  (`OPENAI_API_KEY`, `OPENAI_BASE_URL`);
- `<name>/<model>` runs on an OpenAI-compatible endpoint declared in the providers file (a local Ollama, a
  hosted gateway): `[endpoints.<name>]` with its `base_url` and the variable that holds its key.

The id splits at its first `/`, so a model name may itself hold slashes (`openrouter/meta-llama/llama-3-8b`).
The providers file is the one place endpoints and per-model limits are declared; it never holds a key, only
the name of the variable that does. Parsing it is pure (`parse_providers`), so its problems are reported with
their fix by the server at start-up and by `doctor`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from server.core.errors import InvalidRequestError

__all__ = [
    "ANTHROPIC",
    "BUILT_IN_PROVIDERS",
    "OPENAI",
    "Endpoint",
    "ModelLimits",
    "ModelRef",
    "Providers",
    "load_providers",
    "parse_providers",
    "split_model_id",
]

ANTHROPIC = "anthropic"
OPENAI = "openai"
BUILT_IN_PROVIDERS = frozenset({ANTHROPIC, OPENAI})

DEFAULT_MAX_OUTPUT_TOKENS = 16_000
"""What a turn may write, unless the model's limits say less."""

BUDGET_SHARE_OF_CONTEXT = 0.75
"""Of a model's declared context window, how much the conversation may fill before old tool results are
trimmed; the rest is left for the answer and for the estimate's error (Anthropic's 200k gives the default 150k)."""

_ENDPOINT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_KEY_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ModelRef:
    """A model id split into the provider that runs it and the name that provider knows it by."""

    provider: str
    name: str


def split_model_id(model_id: str) -> ModelRef:
    """`openai/gpt-4o-mini` -> (openai, gpt-4o-mini); a bare id is Anthropic's."""
    provider, slash, name = model_id.partition("/")
    if not slash:
        return ModelRef(ANTHROPIC, model_id)
    return ModelRef(provider, name)


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible Chat Completions endpoint: the built-in `openai` one or one the providers file names.

    `api_key` is the key's value (never logged, never shown); `api_key_env` says where it came from, for
    messages. For the built-in `openai` endpoint both are None and the `openai` SDK reads `OPENAI_API_KEY` and
    `OPENAI_BASE_URL` itself; a declared endpoint always has a `base_url`, and no `api_key` means none is needed
    (a local server), never that `OPENAI_API_KEY` is sent to it."""

    name: str
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)
    key_present: bool = False
    """Whether a key will be sent: for `openai`, whether `OPENAI_API_KEY` is set."""
    vision: bool = True
    """Whether the endpoint takes images and PDFs; when not, they reach the model as a short text note."""


@dataclass(frozen=True)
class ModelLimits:
    """How much of the context a conversation may fill before trimming, and how long an answer may be."""

    budget_tokens: int
    max_output_tokens: int


@dataclass(frozen=True)
class _Window:
    context_tokens: int | None = None
    max_output_tokens: int | None = None


@dataclass(frozen=True)
class Providers:
    """The endpoints a model id may name, and what is declared about models' windows."""

    openai: Endpoint = field(default_factory=lambda: Endpoint(OPENAI))
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict[str, Endpoint])
    """The declared OpenAI-compatible endpoints, by name."""
    windows: Mapping[str, _Window] = field(default_factory=dict[str, _Window])
    """Declared context windows: by full model id, and by endpoint name for all of its models."""
    source: str | None = None
    """The providers file they came from, for messages."""

    def endpoint(self, provider: str) -> Endpoint | None:
        """The OpenAI-compatible endpoint named `provider`, if there is one."""
        return self.openai if provider == OPENAI else self.endpoints.get(provider)

    def check(self, model_id: str) -> None:
        """Raises `InvalidRequestError` when nothing here would run `model_id`."""
        ref = split_model_id(model_id)
        if not ref.name:
            raise InvalidRequestError(f"model {model_id!r} names no model after {ref.provider + '/'!r}")
        if ref.provider == ANTHROPIC or self.endpoint(ref.provider) is not None:
            return
        known = ", ".join(sorted({ANTHROPIC, OPENAI, *self.endpoints}))
        where = self.source or "the providers file"
        raise InvalidRequestError(
            f"model {model_id!r}: no provider is named {ref.provider!r} (known: {known}); use one of those "
            f"prefixes, a bare Claude model id, or declare [endpoints.{ref.provider}] with its base_url in {where}"
        )

    def limits(self, model_id: str, default_budget_tokens: int) -> ModelLimits:
        """The model's budget and answer length: from its declared window (the model's own, else its endpoint's),
        else the server-wide budget."""
        ref = split_model_id(model_id)
        own = self.windows.get(model_id) or self.windows.get(f"{ref.provider}/{ref.name}")
        declared = [w for w in (own, self.windows.get(ref.provider)) if w is not None]
        context = next((w.context_tokens for w in declared if w.context_tokens), None)
        output = next((w.max_output_tokens for w in declared if w.max_output_tokens), None)
        if context is None:
            return ModelLimits(default_budget_tokens, output or DEFAULT_MAX_OUTPUT_TOKENS)
        output = min(output or DEFAULT_MAX_OUTPUT_TOKENS, max(1, context // 4))
        return ModelLimits(max(1, min(int(context * BUDGET_SHARE_OF_CONTEXT), context - output)), output)


def load_providers(path: str, environ: Mapping[str, str], *, required: bool) -> tuple[Providers, list[str]]:
    """Reads the providers file at `path` (absent is fine unless `required`): the providers and what is wrong."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        problems = [f"the providers file {path} does not exist; create it or unset MANAGED_SESSIONS_PROVIDERS"]
        return parse_providers({}, environ), problems if required else []
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return parse_providers({}, environ), [f"the providers file {path} cannot be read: {exc}; fix or remove it"]
    return _with_source(*_parse(data, environ), path)


def parse_providers(data: Mapping[str, Any], environ: Mapping[str, str]) -> Providers:
    """The providers a parsed file declares; what cannot be used is left out (see `load_providers`)."""
    return _parse(data, environ)[0]


def _with_source(providers: Providers, problems: list[str], path: str) -> tuple[Providers, list[str]]:
    found = [f"{path}: {problem}" for problem in problems]
    return Providers(providers.openai, providers.endpoints, providers.windows, source=path), found


def _parse(data: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[Providers, list[str]]:
    problems: list[str] = [
        f'unknown section [{key}]; use [endpoints.NAME] or [models."ID"]'
        for key in data
        if key not in ("endpoints", "models")
    ]
    openai = Endpoint(OPENAI, key_present=bool(environ.get("OPENAI_API_KEY")))
    endpoints: dict[str, Endpoint] = {}
    windows: dict[str, _Window] = {}
    for name, table in _tables(data, "endpoints", problems):
        endpoint = _endpoint(name, table, environ, problems)
        if endpoint is not None:
            endpoints[name] = endpoint
            windows[name] = _window(f"[endpoints.{name}]", table, problems)
    for model_id, table in _tables(data, "models", problems):
        unknown = sorted(set(table) - {"context_tokens", "max_output_tokens"})
        if unknown:
            problems.append(f"[models.{model_id!r}]: unknown keys {unknown}; use context_tokens, max_output_tokens")
        windows[model_id] = _window(f"[models.{model_id!r}]", table, problems)
    return Providers(openai, endpoints, windows), problems


def _tables(data: Mapping[str, Any], section: str, problems: list[str]) -> list[tuple[str, Mapping[str, Any]]]:
    value = data.get(section, {})
    if not isinstance(value, dict):
        problems.append(f"[{section}] must be a table of tables")
        return []
    found: list[tuple[str, Mapping[str, Any]]] = []
    for name, table in value.items():
        if isinstance(table, dict):
            found.append((str(name), table))
        else:
            problems.append(f"{section}.{name} must be a table ([{section}.{name}])")
    return found


_ENDPOINT_KEYS = frozenset({"base_url", "api_key_env", "vision", "context_tokens", "max_output_tokens"})


def _endpoint(name: str, table: Mapping[str, Any], environ: Mapping[str, str], problems: list[str]) -> Endpoint | None:
    where = f"[endpoints.{name}]"
    if name in BUILT_IN_PROVIDERS:
        problems.append(
            f"{where}: {name!r} is built in (its settings come from its SDK's variables); pick another name, and "
            f'declare a model\'s window under [models."{name}/MODEL"]'
        )
        return None
    if not _ENDPOINT_NAME.match(name):
        problems.append(f"{where}: a name is lowercase letters, digits, '-' and '_' (at most 40)")
        return None
    unknown = sorted(set(table) - _ENDPOINT_KEYS)
    if unknown:
        problems.append(f"{where}: unknown keys {unknown}; use {', '.join(sorted(_ENDPOINT_KEYS))}")
    base_url = table.get("base_url")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        problems.append(f'{where}: base_url must be an http(s) URL, e.g. base_url = "http://localhost:11434/v1"')
        return None
    key_env = table.get("api_key_env")
    if key_env is not None and not (isinstance(key_env, str) and _KEY_VARIABLE.match(key_env)):
        problems.append(f'{where}: api_key_env names an environment variable, e.g. api_key_env = "OPENROUTER_API_KEY"')
        return None
    vision = table.get("vision", True)
    if not isinstance(vision, bool):
        problems.append(f"{where}: vision is true or false")
        vision = True
    key = environ.get(key_env) or None if key_env else None
    return Endpoint(name, base_url.rstrip("/"), key_env, key, key_present=key is not None, vision=vision)


def _window(where: str, table: Mapping[str, Any], problems: list[str]) -> _Window:
    values: dict[Literal["context_tokens", "max_output_tokens"], int | None] = {}
    for key in ("context_tokens", "max_output_tokens"):
        value = table.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            problems.append(f"{where}: {key} is a whole number of tokens, 1 or more")
            value = None
        values[key] = value
    return _Window(values["context_tokens"], values["max_output_tokens"])
