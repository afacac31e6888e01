"""Sessions as clients see them: the pinned agent, the environment snapshot, and derived state."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.core.agents import AgentSnapshot
from server.core.environments import EnvironmentSpec
from server.core.events import Event, StopReason, Usage

__all__ = [
    "AnySessionResource",
    "BranchCheckout",
    "Checkout",
    "CommitCheckout",
    "EgressPosture",
    "EgressRefusal",
    "FileSessionResource",
    "SandboxPosture",
    "Session",
    "SessionResource",
    "SessionStats",
    "SessionStatus",
]

SessionStatus = Literal["idle", "running", "rescheduling", "terminated"]
"""The contract's statuses. This server retries a failed model call inside the turn and never enters
`rescheduling` (nor emits `session.status_rescheduled`): a client may still filter on it and gets nothing."""


class SessionStats(BaseModel):
    event_count: int = Field(description="How many events the session's log holds.")
    last_event_at: str | None = None


class _Checkout(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class BranchCheckout(_Checkout):
    type: Literal["branch"]
    name: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\s~^:?*\[\\]+$")]

    @field_validator("name")
    @classmethod
    def _ref_name(cls, name: str) -> str:
        # git's own rules, the ones that would otherwise read as an option or a range
        if name.startswith(("-", "/")) or ".." in name or name.endswith((".lock", "/", ".")) or "@{" in name:
            raise ValueError(f"{name!r} is not a valid branch name")
        return name


class CommitCheckout(_Checkout):
    type: Literal["commit"]
    sha: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{7,40}$")]


Checkout = Annotated[BranchCheckout | CommitCheckout, Field(discriminator="type")]


class SessionResource(BaseModel):
    """A git repository cloned into the session's /workspace before its first turn. Its token is never shown."""

    id: str = Field(description="sesrsc_ id.")
    type: Literal["github_repository"] = "github_repository"
    url: str
    mount_path: str = Field(description="Where the working tree is in the sandbox.")
    checkout: Checkout | None = Field(default=None, description="Branch or commit; null: default branch.")
    created_at: str
    updated_at: str


class FileSessionResource(BaseModel):
    """An uploaded file, read-only in the sandbox at `mount_path` before the first turn."""

    id: str = Field(description="sesrsc_ id.")
    type: Literal["file"] = "file"
    file_id: str = Field(description="The upload (file_...) it was made from.")
    mount_path: str = Field(description="Where the file is in the sandbox (read-only).")
    created_at: str
    updated_at: str


AnySessionResource = Annotated[SessionResource | FileSessionResource, Field(discriminator="type")]
"""A resource of a session: a git repository or an uploaded file."""


class EgressRefusal(BaseModel):
    """A host the egress proxy refused to this session, most recent first in `EgressPosture.recent_refusals`."""

    host: str
    port: int
    reason: str = Field(description="Why, and the setting that would change it.")
    count: int
    first_at: str
    last_at: str


class EgressPosture(BaseModel):
    """Where the sandbox's traffic may go and what enforces it; refusals tell a user what to add to allowed_hosts."""

    mode: Literal["none", "limited", "unrestricted"]
    enforcement: str = Field(description="How the mode is enforced on this server, in plain words.")
    proxy: str | None = Field(default=None, description="The egress proxy the sandbox must use (limited).")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="limited: every host the proxy lets through (allowed_hosts, package indexes, MCP servers).",
    )
    private_addresses_allowed: bool = Field(
        default=False, description="Whether loopback/private/link-local addresses are reachable (server opt-in)."
    )
    recent_refusals: list[EgressRefusal] = Field(default_factory=list)


class SandboxPosture(BaseModel):
    """How a session's sandbox is confined; `get_session` shows it."""

    image: str = Field(description="The environment's image (packages are layered on it in a cached image).")
    user: str = Field(description="uid:gid the tools run as; never root.")
    network: str = Field(description="The sandbox's network: 'none' (only loopback) or the Docker network's name.")
    capabilities: list[str] = Field(description="Linux capabilities kept: none.")
    no_new_privileges: bool
    memory_mb: int
    cpus: float
    pids_limit: int
    disk_mb: int | None = Field(description="Writable-layer limit, where the storage driver supports one.")
    docker_socket: bool = Field(description="Whether the Docker socket is reachable from inside: never.")
    extra_ca_bundle: bool = Field(description="Whether an extra CA bundle is mounted read-only.")
    egress: EgressPosture | None = Field(default=None, description="Where its traffic may go, and what was refused.")


class Session(BaseModel):
    """A session. Status, stop_reason, usage and stats are derived from its event log."""

    type: Literal["session"] = "session"
    id: str
    status: SessionStatus
    stop_reason: StopReason | None = None
    title: str | None = None
    agent: AgentSnapshot
    environment_id: str | None = Field(description="The environment it was created from; null for the default.")
    environment: EnvironmentSpec = Field(description="The environment snapshot the sandbox is built from.")
    sandbox: SandboxPosture | None = Field(default=None, description="How the session's sandbox is confined.")
    resources: list[AnySessionResource] = Field(default_factory=list)
    vault_ids: list[str] = Field(
        default_factory=list, description="Vaults whose credentials the host uses for this session, in order."
    )
    metadata: dict[str, str] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=Usage)
    stats: SessionStats
    created_at: str
    updated_at: str
    archived_at: str | None = None


class EventPage(BaseModel):
    """A page of a session's events, oldest first."""

    session_id: str
    events: list[Event]
    next_cursor: str | None = Field(description="Pass as `after` to continue; the last event id seen.")
    has_more: bool = Field(description="Whether more events already exist after this page.")
    status: SessionStatus
    stop_reason: StopReason | None = None
