"""Environments: what a session's sandbox is made of (image, packages, network, limits)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from server.core.common import PLAIN_TEXT, Strict
from server.core.config import MAX_WARM_POOL
from server.core.host_entries import check_host_entry

__all__ = [
    "AllowedHosts",
    "Environment",
    "EnvironmentSpec",
    "LimitedNetwork",
    "Networking",
    "NoNetwork",
    "Packages",
    "Resources",
    "UnrestrictedNetwork",
    "WarmPoolSize",
]

MAX_PACKAGES_PER_MANAGER = 100
MAX_ENV_VARS = 100
MAX_ENV_VALUE_CHARS = 32_768
MAX_ALLOWED_HOSTS = 256  # plenty for one job's hosts; keeps a policy short enough to read back in get_session

# Docker's reference grammar, reduced to what a local engine accepts:
# [registry[:port]/]path[:tag][@sha256:digest], lower-case path components.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    # A first component is a registry only if it has a dot or a port, or is localhost (Docker's own rule).
    r"^(?:(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+(?::[0-9]+)?|[a-zA-Z0-9-]+:[0-9]+|localhost)/)?"
    rf"{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
_APT = re.compile(r"^[a-z0-9][a-z0-9+.-]*(?:=[A-Za-z0-9.+~:-]+)?$")
# PEP 508 name with an optional extras list and version specifier; no URLs, no options.
_PIP = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\[[A-Za-z0-9._,-]+\])?(?:\s*(?:[<>=!~]=?|===)\s*[A-Za-z0-9.*+!_-]+(?:\s*,\s*(?:[<>=!~]=?|===)\s*[A-Za-z0-9.*+!_-]+)*)?$"
)
_NPM = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*(?:@[A-Za-z0-9.^~<>=| *+_-]+)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _preview(value: str, limit: int = 60) -> str:
    """A value short enough to quote in an error message."""
    return value if len(value) <= limit else value[:limit] + f"...({len(value)} chars)"


def _image(value: str) -> str:
    if not _IMAGE.match(value):
        raise ValueError(
            f"{value!r} is not a Docker image reference such as 'python:3.12-slim' or 'registry:5000/team/img:tag'"
        )
    return value


def _packages(pattern: re.Pattern[str], manager: str, example: str) -> AfterValidator:
    def check(values: list[str]) -> list[str]:
        if len(values) > MAX_PACKAGES_PER_MANAGER:
            raise ValueError(f"at most {MAX_PACKAGES_PER_MANAGER} {manager} packages, got {len(values)}")
        bad = [_preview(v) for v in values if len(v) > 214 or not pattern.match(v)]
        if bad:
            raise ValueError(f"not valid {manager} package specs: {bad!r}; write them like {example!r}")
        return values

    return AfterValidator(check)


ImageRef = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_image)]


class Packages(Strict):
    """Packages installed once per distinct environment into a cached image; managers run apt, npm, pip."""

    apt: Annotated[list[str], _packages(_APT, "apt", "ripgrep=13.0.0-4")] = Field(default_factory=list)
    pip: Annotated[list[str], _packages(_PIP, "pip", "requests==2.32.3")] = Field(default_factory=list)
    npm: Annotated[list[str], _packages(_NPM, "npm", "typescript@5.6.3")] = Field(default_factory=list)


class NoNetwork(Strict):
    type: Literal["none"] = "none"


class UnrestrictedNetwork(Strict):
    type: Literal["unrestricted"]


def _distinct(entries: list[str]) -> list[str]:
    """The entries in their first order, each once (normalising can make two spellings one)."""
    return list(dict.fromkeys(entries))


HostEntry = Annotated[str, StringConstraints(min_length=1, max_length=300), AfterValidator(check_host_entry)]
AllowedHosts = Annotated[list[HostEntry], Field(max_length=MAX_ALLOWED_HOSTS), AfterValidator(_distinct)]


class LimitedNetwork(Strict):
    """Deny by default: only the listed hosts (and, if asked, package indexes and MCP servers), via the egress proxy."""

    type: Literal["limited"]
    allowed_hosts: AllowedHosts = Field(
        default_factory=list,
        description="Hosts the sandbox may reach: 'example.com', '*.example.com', an IP literal; optional ':port' "
        "(without one, ports 80 and 443).",
    )
    allow_package_managers: bool = Field(
        default=False, description="Also the package indexes (pip, npm, apt) this server uses and the public ones."
    )
    allow_mcp_servers: bool = Field(default=False, description="Also the hosts of the agent's mcp_servers.")


Networking = Annotated[NoNetwork | UnrestrictedNetwork | LimitedNetwork, Field(discriminator="type")]


class Resources(Strict):
    """Limits for the sandbox container; unset values take the server's defaults."""

    cpus: float | None = Field(default=None, ge=0.1, le=64, description="CPU cores, e.g. 1.5.")
    memory_mb: int | None = Field(default=None, ge=64, le=262_144, description="Memory limit in MiB.")
    disk_mb: int | None = Field(default=None, ge=100, le=1_048_576, description="Disk limit in MiB.")


def _env_vars(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_ENV_VARS:
        raise ValueError(f"at most {MAX_ENV_VARS} env variables, got {len(value)}")
    bad_names = sorted(_preview(k) for k in value if not _ENV_NAME.match(k))
    if bad_names:
        raise ValueError(f"env names must match [A-Za-z_][A-Za-z0-9_]*: {bad_names!r}")
    too_long = sorted(k for k, v in value.items() if len(v) > MAX_ENV_VALUE_CHARS or "\0" in v)
    if too_long:
        raise ValueError(f"env values must be at most {MAX_ENV_VALUE_CHARS} chars with no NUL: {too_long!r}")
    return value


EnvVars = Annotated[dict[str, str], AfterValidator(_env_vars)]
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=256), PLAIN_TEXT]
EnvDescription = Annotated[str, StringConstraints(max_length=2_048), PLAIN_TEXT]


class EnvironmentSpec(BaseModel):
    """The sandbox definition a session is created with (a snapshot: later edits do not reach it)."""

    image: ImageRef | None = Field(default=None, description="Image name; null means the server's default image.")
    packages: Packages = Field(default_factory=Packages)
    networking: Networking = Field(default_factory=NoNetwork)
    resources: Resources = Field(default_factory=Resources)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("networking")
    @classmethod
    def _packages_need_package_managers(
        cls, networking: NoNetwork | UnrestrictedNetwork | LimitedNetwork, info: ValidationInfo
    ) -> NoNetwork | UnrestrictedNetwork | LimitedNetwork:
        """Under `limited`, the image build goes through the same allow-list, so packages need their indexes open.

        (`packages` is declared first, so it is in `info.data` here unless it failed its own checks.)"""
        packages = info.data.get("packages")
        wanted = isinstance(packages, Packages) and (packages.apt or packages.pip or packages.npm)
        if isinstance(networking, LimitedNetwork) and wanted and not networking.allow_package_managers:
            raise ValueError(
                "packages under 'limited' networking are installed through its allow-list: set "
                "networking.allow_package_managers: true, or drop the packages"
            )
        return networking


WarmPoolSize = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_WARM_POOL,
        description="Started containers kept waiting for new sessions of this environment, so their first tool "
        "call does not wait for one (0: none). Not for 'limited' networking.",
    ),
]


class Environment(EnvironmentSpec):
    type: Literal["environment"] = "environment"
    id: str
    name: str
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    warm_pool: WarmPoolSize = 0
    """Not part of the snapshot a session takes (`spec`): it is how many wait, not what they are."""
    created_at: str
    updated_at: str
    archived_at: str | None = None

    @model_validator(mode="after")
    def _no_pool_behind_the_proxy(self) -> Environment:
        """A `limited` sandbox is admitted to the egress proxy by its address and session, which a container made
        before its session cannot be; so such environments are not pooled."""
        if self.warm_pool and isinstance(self.networking, LimitedNetwork):
            raise ValueError(
                "warm_pool needs networking 'none' or 'unrestricted': a 'limited' sandbox is admitted to the "
                "egress proxy for its session, so it cannot be started before one; set warm_pool to 0"
            )
        return self

    def spec(self) -> EnvironmentSpec:
        """The part of the environment a session snapshots."""
        return EnvironmentSpec.model_validate(self.model_dump(include=set(EnvironmentSpec.model_fields)))
