"""Server configuration: the one place that reads the environment.

Everything the server needs from its surroundings is gathered into a frozen
`ServerConfig` once, at start-up, so the rest of the code never touches
`os.environ` and tests can build a config by hand.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from server.core.models import Providers, load_providers

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_MODEL",
    "DEFAULT_WARM_POOL",
    "MAX_WARM_POOL",
    "PROVIDERS_FILE_NAME",
    "ServerConfig",
]

DEFAULT_IMAGE = "managed-sessions-sandbox:0.1"
"""The image `managed-sessions image build` makes and sessions use by default."""

DEFAULT_MODEL = "claude-sonnet-5-5"
"""A current Claude Sonnet model, used when neither the session nor its agent names one."""

DEFAULT_HTTP_PORT = 8765

PROVIDERS_FILE_NAME = "providers.toml"
"""The providers file in the data dir (`MANAGED_SESSIONS_PROVIDERS` names another): endpoints and model windows."""

DEFAULT_MAX_UPLOAD_MB = 500
"""The largest upload, in MB: big datasets fit; a runaway client does not fill the disk."""

DEFAULT_ENGINE_WAIT_S = 60.0
"""How long a tool call waits for a Docker engine that does not answer before the turn gives up."""

DEFAULT_STREAM_PING_S = 15.0
"""Heartbeats on an idle event stream: well inside the idle timeouts of proxies and HTTP clients (30-120 s)."""

DEFAULT_IDLE_STOP_S = 900.0
"""After this long with no run and no sandbox call, a session's container is stopped (its files stay): long enough
that a conversation's pauses keep their shell, short enough that forgotten sessions free their memory."""

DEFAULT_WARM_POOL = 1
"""Started, unassigned containers kept for new sessions of the default environment (`MANAGED_SESSIONS_WARM_POOL`):
one takes the wait for a container off a new session's first tool call; more only help bursts of new sessions."""

MAX_WARM_POOL = 8
"""Each pooled container holds memory while it waits; past a few, a burst is better served by starting them."""


@dataclass(frozen=True)
class ServerConfig:
    """What the server needs to know about its surroundings.

    Attributes:
        data_dir: where the SQLite store, session outputs and logs live.
        image: sandbox image for environments that name none.
        model: model for sessions and agents that name none.
        token: bearer token for the HTTP transport, when given explicitly.
        model_key_present: whether the `anthropic` SDK will find credentials.
        model_base_url: an Anthropic-compatible endpoint replacing the default one.
        allowed_hosts: extra Host header values the HTTP transport accepts.
        extra_ca_bundle: a PEM bundle trusted inside sandboxes and image builds (corporate TLS proxies).
        web_fetch_allow_private: let web_fetch reach loopback and private addresses.
        egress_allow_private: let sandboxes (through the egress proxy, or unrestricted) reach loopback, private
            and link-local addresses: for tests and private package mirrors.
        model_retry_delays_s: the waits between retries of a failing model request (None: the default).
        context_budget_tokens: past this estimated size, old tool results are trimmed before a model request.
        vault_allow_insecure_keyring: let the vault use a plaintext or null keyring backend (an explicit opt-in).
        engine_wait_s: how long a tool call waits for a Docker engine that does not answer.
        stream_ping_s: how often an idle event stream (`/v1/sessions/{id}/events/stream`) sends a heartbeat.
        max_upload_bytes: the largest file `POST /v1/files` takes (`MANAGED_SESSIONS_MAX_UPLOAD_MB`).
        idle_stop_s: how long a session's container may sit unused before it is stopped
            (`MANAGED_SESSIONS_IDLE_STOP_S`); NaN when the variable was not a number (`problems` reports it).
        warm_pool: how many started containers wait for new sessions of the default environment
            (`MANAGED_SESSIONS_WARM_POOL`, default 1 when read from the environment; 0 disables it). A config made
            in code keeps none unless it asks: tests and tools that count containers see only the sessions' own.
            -1 when the variable was not a whole number (`problems` reports it).
        providers: the model providers beside Anthropic (`openai/`, the endpoints the providers file declares).
        providers_problems: what is wrong in the providers file, each with its fix (reported at start).
    """

    data_dir: Path
    image: str = DEFAULT_IMAGE
    model: str = DEFAULT_MODEL
    token: str | None = field(default=None, repr=False)
    model_key_present: bool = False
    model_base_url: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    extra_ca_bundle: Path | None = None
    web_fetch_allow_private: bool = False
    egress_allow_private: bool = False
    model_retry_delays_s: tuple[float, ...] | None = None
    context_budget_tokens: int = 150_000
    vault_allow_insecure_keyring: bool = False
    engine_wait_s: float = DEFAULT_ENGINE_WAIT_S
    stream_ping_s: float = DEFAULT_STREAM_PING_S
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024
    idle_stop_s: float = DEFAULT_IDLE_STOP_S
    warm_pool: int = 0
    providers: Providers = field(default_factory=Providers)
    providers_problems: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerConfig:
        """Builds the config from `MANAGED_SESSIONS_*` and the SDK's own variables."""
        env = os.environ if environ is None else environ
        data_dir = env.get("MANAGED_SESSIONS_DATA_DIR") or platformdirs.user_data_dir("managed-sessions")
        hosts = env.get("MANAGED_SESSIONS_ALLOWED_HOSTS", "")
        providers_file = env.get("MANAGED_SESSIONS_PROVIDERS")
        providers_path = Path(providers_file or Path(data_dir) / PROVIDERS_FILE_NAME).expanduser()
        providers, providers_problems = load_providers(str(providers_path), env, required=bool(providers_file))
        return cls(
            data_dir=Path(data_dir).expanduser(),
            image=env.get("MANAGED_SESSIONS_IMAGE") or DEFAULT_IMAGE,
            model=env.get("MANAGED_SESSIONS_MODEL") or DEFAULT_MODEL,
            token=env.get("MANAGED_SESSIONS_TOKEN") or None,
            model_key_present=bool(env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_AUTH_TOKEN")),
            model_base_url=env.get("ANTHROPIC_BASE_URL") or None,
            allowed_hosts=tuple(h.strip() for h in hosts.split(",") if h.strip()),
            extra_ca_bundle=Path(ca).expanduser() if (ca := env.get("MANAGED_SESSIONS_EXTRA_CA_BUNDLE")) else None,
            web_fetch_allow_private=env.get("MANAGED_SESSIONS_WEB_FETCH_ALLOW_PRIVATE") == "1",
            egress_allow_private=env.get("MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE") == "1",
            model_retry_delays_s=_delays(env.get("MANAGED_SESSIONS_MODEL_RETRY_DELAYS")),
            context_budget_tokens=_positive_int(env.get("MANAGED_SESSIONS_CONTEXT_TOKENS"), 150_000),
            vault_allow_insecure_keyring=env.get("MANAGED_SESSIONS_VAULT_ALLOW_INSECURE_KEYRING") == "1",
            engine_wait_s=_seconds(env.get("MANAGED_SESSIONS_ENGINE_WAIT_S"), DEFAULT_ENGINE_WAIT_S),
            stream_ping_s=_seconds(env.get("MANAGED_SESSIONS_STREAM_PING_S"), DEFAULT_STREAM_PING_S),
            max_upload_bytes=_positive_int(env.get("MANAGED_SESSIONS_MAX_UPLOAD_MB"), DEFAULT_MAX_UPLOAD_MB)
            * 1024
            * 1024,
            idle_stop_s=_number(env.get("MANAGED_SESSIONS_IDLE_STOP_S"), DEFAULT_IDLE_STOP_S),
            warm_pool=_count(env.get("MANAGED_SESSIONS_WARM_POOL"), DEFAULT_WARM_POOL),
            providers=providers,
            providers_problems=tuple(providers_problems),
        )

    def problems(self) -> list[str]:
        """What is wrong with the values given, each with its fix; empty when all is well."""
        from pydantic import TypeAdapter, ValidationError

        from server.core.agents import ModelId
        from server.core.environments import ImageRef

        found = list(self.providers_problems)
        for variable, value, kind in (
            ("MANAGED_SESSIONS_IMAGE", self.image, ImageRef),
            ("MANAGED_SESSIONS_MODEL", self.model, ModelId),
        ):
            try:
                TypeAdapter(kind).validate_python(value)
            except ValidationError:
                found.append(f"{variable}={value!r} is not valid; unset it or give a valid value")
        if not 0 < self.idle_stop_s < float("inf"):  # NaN fails this too
            found.append(
                "MANAGED_SESSIONS_IDLE_STOP_S must be a number of seconds greater than 0 "
                f"(default {DEFAULT_IDLE_STOP_S:.0f}); unset it or give one"
            )
        if not 0 <= self.warm_pool <= MAX_WARM_POOL:
            found.append(
                f"MANAGED_SESSIONS_WARM_POOL must be a whole number from 0 (no pool) to {MAX_WARM_POOL} "
                f"(default {DEFAULT_WARM_POOL}); unset it or give one"
            )
        try:
            self.providers.check(self.model)
        except ValueError as exc:
            found.append(f"MANAGED_SESSIONS_MODEL: {exc}")
        return found

    @property
    def database_path(self) -> Path:
        """The SQLite store."""
        return self.data_dir / "store.db"

    @property
    def tool_cache_path(self) -> Path:
        """The MCP tools' schemas, kept between starts (`server/fronts/mcp/tool_cache.py`); safe to delete."""
        return self.data_dir / "cache" / "mcp-tools.json"

    @property
    def vault_index_path(self) -> Path:
        """The vault's index of vaults and credentials (metadata only; the secrets are in the keyring)."""
        return self.data_dir / "vault" / "index.json"


def _delays(value: str | None) -> tuple[float, ...] | None:
    """`MANAGED_SESSIONS_MODEL_RETRY_DELAYS=1,2,4`: seconds between retries; bad values mean the default."""
    if not value:
        return None
    try:
        return tuple(max(0.0, float(part)) for part in value.split(","))
    except ValueError:
        return None


def _seconds(value: str | None, default: float) -> float:
    """A duration in seconds, 0 or more; a bad value means the default."""
    try:
        number = float(value) if value else default
    except ValueError:
        return default
    return number if 0 <= number < float("inf") else default


def _number(value: str | None, default: float) -> float:
    """A number as given, checked by `problems` (NaN when it is not one), so a typo is reported, not ignored."""
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        return float("nan")


def _count(value: str | None, default: int) -> int:
    """A whole number as given, checked by `problems` (-1 when it is not one), so a typo is reported."""
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        return -1


def _positive_int(value: str | None, default: int) -> int:
    try:
        number = int(value) if value else default
    except ValueError:
        return default
    return number if number > 0 else default
