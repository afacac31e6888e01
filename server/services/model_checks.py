"""`doctor`'s checks of the model providers: each one's key, and one cheap request (its model list) to it.

A provider is checked when something may use it: Anthropic always (bare model ids are its), `openai/` when
`OPENAI_API_KEY` is set or the default model is one of its, and every endpoint the providers file declares.
A missing key or an unreachable endpoint fails the check when the default model runs there, and warns
otherwise (sessions on other providers still work). Keys are reported as present or missing, never shown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import anyio

from server.brain.model import ModelError
from server.brain.providers.anthropic import AnthropicModel
from server.brain.providers.openai_compat import OpenAICompatModel
from server.core.config import ServerConfig
from server.core.models import ANTHROPIC, OPENAI, Endpoint, split_model_id

__all__ = ["ModelCheck", "check_models"]

PROBE_TIMEOUT_S = 10.0
"""How long one model list may take before the endpoint counts as unreachable."""

Level = Literal["ok", "warn", "FAIL"]


@dataclass(frozen=True)
class ModelCheck:
    name: str
    level: Level
    detail: str
    fix: str = ""


def check_models(config: ServerConfig) -> list[ModelCheck]:
    """One line per provider that may be used, and one for the providers file when it has mistakes."""
    checks: list[ModelCheck] = []
    if config.providers_problems:
        source = config.providers.source or "the providers file"
        checks.append(
            ModelCheck("providers file", "FAIL", "; ".join(config.providers_problems), f"fix {source} (see README)")
        )
    default = split_model_id(config.model).provider
    checks.append(_anthropic(config, required=default == ANTHROPIC))
    openai = config.providers.openai
    if openai.key_present or default == OPENAI:
        checks.append(_openai_compatible(openai, required=default == OPENAI))
    for name, endpoint in sorted(config.providers.endpoints.items()):
        checks.append(_openai_compatible(endpoint, required=default == name))
    return checks


def _anthropic(config: ServerConfig, *, required: bool) -> ModelCheck:
    name = "model credentials"  # the Anthropic line keeps its name: scripts read it
    where = _shown(config.model_base_url) or "the default endpoint"
    if not config.model_key_present:
        return ModelCheck(
            name,
            "FAIL" if required else "warn",
            f"no ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) for {where}",
            "export ANTHROPIC_API_KEY in the server's environment (and ANTHROPIC_BASE_URL for another endpoint)",
        )
    client = AnthropicModel(api_key_present=True)
    return _probe(name, f"a key is set for {where}", client.list_models, client.aclose, required)


def _openai_compatible(endpoint: Endpoint, *, required: bool) -> ModelCheck:
    name = f"model provider {endpoint.name}"
    where = _shown(endpoint.base_url) or "the default endpoint (or OPENAI_BASE_URL)"
    variable = "OPENAI_API_KEY" if endpoint.name == OPENAI else endpoint.api_key_env
    if variable is not None and not endpoint.key_present:
        return ModelCheck(
            name,
            "FAIL" if required else "warn",
            f"no {variable} for {where}",
            f"export {variable} in the server's environment",
        )
    key = f"a key is set ({variable})" if variable else "no key (none declared)"
    client = OpenAICompatModel(endpoint)
    return _probe(name, f"{key} for {where}", client.list_models, client.aclose, required)


def _probe(
    name: str,
    said: str,
    list_models: Callable[[], Awaitable[list[str]]],
    close: Callable[[], Awaitable[None]],
    required: bool,
) -> ModelCheck:
    """Asks the endpoint for its models once; reachable is ok, anything else says what went wrong."""

    async def ask() -> list[str] | ModelError:
        try:
            with anyio.fail_after(PROBE_TIMEOUT_S):
                return await list_models()
        except ModelError as exc:
            return exc
        except TimeoutError:
            return ModelError("model_request_failed_error", f"no answer within {PROBE_TIMEOUT_S:g} s")
        finally:
            await close()

    answer = anyio.run(ask)
    if isinstance(answer, list):
        return ModelCheck(name, "ok", f"{said}; reachable, {len(answer)} model(s) listed")
    if answer.kind == "model_not_found_error":  # some compatible servers list no models: reachable all the same
        return ModelCheck(name, "ok", f"{said}; reachable (it lists no models)")
    fix = {
        "authentication_error": "check the key: the endpoint refused it",
        "configuration_error": "set what the message names",
        "billing_error": "check the account's plan and billing details",
    }.get(answer.kind, "check the base URL and that the endpoint is running")
    return ModelCheck(name, "FAIL" if required else "warn", f"{said}; {answer}", fix)


def _shown(url: str | None) -> str | None:
    """A base URL without its path or any credentials in it."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
