"""One Docker container per session, made on first use and remade when it dies.

Lifecycle:

- Nothing is created with the session. The first tool call prepares the
  environment's image (cached per definition, see `images.py`; a missing
  default image raises `ImageMissingError`, and the agent loop has it built
  through `default_image.py` before it tries again), creates two
  named volumes (`/workspace`, `/mnt/session/outputs`), starts the container and
  opens the helper channel. Later calls reuse the channel.
- Containers and volumes carry labels with the store's id and the session's id,
  so a restarted server finds a live container again (it opens a new channel
  into it instead of making a second one) and reaps only what is its own.
- The files live in the volumes, so when a container dies or is removed the
  next call makes a new container over the same files. A call that was running
  when the container died is not re-run: it reports the loss.
- `stop` (archive) removes the container and keeps the volumes; `destroy`
  (delete) removes both.
- Idling: `stop_if_idle` stops (not removes) a container that has had no call
  for a while. Its files stay in the volumes, and the stopped container still
  serves output reads through the engine's archive API (`output_source`), so
  reading outputs never starts one. The next call makes a new container; as the
  shell's state (cwd, variables) is gone, the first tool result after it says so
  once (`take_notice`).
- A Docker engine that does not answer raises `EngineUnreachableError`, and
  only where the call never reached the helper (opening the channel), so a
  caller that waits for the engine and tries again never runs a tool twice.

Confinement (the posture `get_session` shows): uid 1000, all capabilities
dropped, `no-new-privileges`, memory/CPU/pids limits, network `none` unless
the environment asks for one (`limited`: the store's internal network, whose
only way out is the egress proxy; `unrestricted`: the store's open network;
see `networks.py`), no Docker socket, only the two volumes, the server's
skill store (read-only; see `link_skills`) and, when configured, a CA bundle
mounted read-only. The environment passed to the
container is built here from the environment definition; nothing of the
server's own environment is inherited.
"""

from __future__ import annotations

import logging
import posixpath
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio
import anyio.abc
from pydantic import JsonValue

from server.core.environments import EnvironmentSpec
from server.core.errors import EngineUnreachableError, SandboxUnavailableError
from server.hands.docker.engine import in_engine
from server.hands.docker.exec_stream import open_exec
from server.hands.docker.images import HELPER_PATH, SANDBOX_UID, BuildNetwork, ImagePreparer
from server.hands.docker.networks import NetworkPlan, SandboxNetworks
from server.hands.helper.channel import ChannelClosedError, HelperChannel, HelperError
from server.hands.sandbox import (
    DEFAULT_CPUS,
    DEFAULT_MEMORY_MB,
    DEFAULT_PIDS_LIMIT,
    Confinement,
    SandboxLostError,
)

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.errors import APIError


__all__ = [
    "LABEL_POOL",
    "LABEL_SESSION",
    "LABEL_STORE",
    "DockerSandbox",
    "MemoryRecords",
    "Pooled",
    "VolumeRecords",
    "WarmSource",
    "open_helper",
    "posture_of",
    "start_container",
    "volume_name",
]

logger = logging.getLogger(__name__)

LABEL_STORE = "io.managed-sessions.store"
LABEL_SESSION = "io.managed-sessions.session"
LABEL_POOL = "io.managed-sessions.pool"
"""On a warm pool's container and its volumes: the key of that volume set (`pool-<hex>`), never a session's id."""
WORKSPACE = "/workspace"
OUTPUTS = "/mnt/session/outputs"
CA_BUNDLE_IN_CONTAINER = "/etc/ssl/certs/ca-certificates.crt"
SKILL_STORE = "/opt/managed-sessions/skill-store"
LINK_SKILLS_TIMEOUT_S = 30.0
CHANNEL_OPEN_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
STOP_GRACE_S = 10
"""Seconds a stopped container's processes get after SIGTERM before SIGKILL (whole seconds: the engine's API)."""
RESTART_NOTICE = (
    "[the sandbox's container had stopped (idle for a while, or the server restarted), so a new one was started "
    "for this call: files in /workspace and /mnt/session/outputs are kept; the shell was restarted, so its cwd "
    "and variables were reset]"
)
"""Told the model once, with the first tool result from a container made where a stopped one was."""

OutputSource = Literal["running", "none"] | str
"""Where a session's outputs can be read: 'running' (its helper), 'none' (it has no outputs yet), or the id of a
container that is not running (the engine's archive of it)."""


@dataclass(frozen=True)
class SandboxSettings:
    """What every sandbox of this server shares."""

    store_id: str
    extra_ca_bundle: Path | None = None
    package_hosts: Callable[[], tuple[str, ...]] = tuple
    """Reads the host entries of the package indexes `allow_package_managers` opens (blocking; called once, when
    the first sandbox that needs them starts)."""
    egress_allow_private: bool = False
    """Whether sandboxes may reach loopback, private and link-local addresses (..._EGRESS_ALLOW_PRIVATE=1)."""
    default_image_base: str | None = None
    """The base the default image is built on when it is missing (`default_image.py`); None: the one
    `managed-sessions image build` picks by itself."""
    skill_store: Path | None = None
    """The host folder of skill versions (`<skill_id>/<version>/`), mounted read-only in every container at
    `SKILL_STORE`; a session's `/mnt/skills/<name>` links point into it (`DockerSandbox.link_skills`)."""


class VolumeRecords(Protocol):
    """The store's record of which volume set a session owns when it is not the one named after the session (it
    took a warm pool's container, whose volumes were made before the session was known). Blocking calls."""

    def session_volumes(self, session_id: str) -> str | None: ...
    def own_volumes(self, session_id: str, volumes: str) -> None: ...
    def volume_owners(self) -> dict[str, str]: ...


class MemoryRecords:
    """`VolumeRecords` kept in memory: for a backend made without a store (tools, tests), and for reading a copy."""

    def __init__(self, owners: dict[str, str] | None = None) -> None:
        self._owners = dict(owners or {})  # volume key -> session id

    def session_volumes(self, session_id: str) -> str | None:
        return next((key for key, owner in self._owners.items() if owner == session_id), None)

    def own_volumes(self, session_id: str, volumes: str) -> None:
        self._owners[volumes] = session_id

    def volume_owners(self) -> dict[str, str]:
        return dict(self._owners)


@dataclass(frozen=True)
class Pooled:
    """A warm pool's started container, with its helper channel already open, waiting for a session."""

    container_id: str
    volumes: str
    """Its volume set's key (`LABEL_POOL`): the volumes become the session's that takes it."""
    image: str
    """The derived image tag it runs: one that is no longer current retires it."""
    channel: HelperChannel
    seen: int | None = None
    """The warm pool's count of the engine's image events when `image` was found current (None: not watching)."""


class VolumeCensus:
    """Which volume sets exist, known without asking the engine, so a new session's first call need not ask it.

    What the engine listed once (`listed`: the reap at the server's start), plus every set a sandbox of this
    process makes afterwards (`add`, called before the engine makes it, so a listing that missed it still
    counts it). Until a listing is in, it does not know (`has` is None) and the engine is asked. Sound while
    only this server makes its store's volumes: one server runs per store, and the CLI's look from outside
    makes none. Thread-safe (engine threads add and read)."""

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._listed = False
        self._lock = threading.Lock()

    def listed(self, names: Iterable[str]) -> None:
        with self._lock:
            self._names.update(names)
            self._listed = True

    def add(self, name: str) -> None:
        with self._lock:
            self._names.add(name)

    def has(self, name: str) -> bool | None:
        """Whether volume `name` exists or existed (None: not known yet)."""
        with self._lock:
            return True if name in self._names else (False if self._listed else None)


class WarmSource(Protocol):
    """Where a new session's sandbox takes a started container from (`warm_pool.WarmPool`)."""

    def offers(self, environment: EnvironmentSpec) -> bool:
        """Whether a pooled container waits for this definition (no engine call)."""
        ...

    def take(self, environment: EnvironmentSpec) -> Pooled | None:
        """A pooled container for this definition, now removed from the pool (None: none waits)."""
        ...

    async def discard(self, pooled: Pooled, *, stale: bool) -> None:
        """Removes a taken container no session got; `stale`: its image is outdated, so retire its like too."""
        ...

    def put_back(self, environment: EnvironmentSpec, pooled: Pooled) -> None:
        """Returns a taken container that no session claimed (nothing of a session is in it) to the pool."""
        ...

    def unchanged(self, pooled: Pooled) -> bool:
        """Whether no image changed on the engine since `pooled`'s image was found current (thread-safe; False
        when that is not known)."""
        ...


def volume_name(store_id: str, volumes: str, kind: str) -> str:
    """A volume's name: `volumes` is a session's id (lower-cased) or a pooled set's key; `kind` says which."""
    return f"ms-{store_id[:12]}-{volumes}-{kind}"


def posture_of(environment: EnvironmentSpec, settings_ca: bool, network: str = "none") -> Confinement:
    """The confinement a container for this environment gets (a pure function of the definition);
    `network` is the Docker network it joins ('none' for no network)."""
    resources = environment.resources
    return Confinement(
        image=environment.image or "",
        user=f"{SANDBOX_UID}:{SANDBOX_UID}",
        network=network if environment.networking.type != "none" else "none",
        capabilities=(),
        no_new_privileges=True,
        memory_mb=resources.memory_mb or DEFAULT_MEMORY_MB,
        cpus=resources.cpus or DEFAULT_CPUS,
        pids_limit=DEFAULT_PIDS_LIMIT,
        disk_mb=resources.disk_mb,
        engine_socket=False,
        extra_ca_bundle=settings_ca,
    )


class DockerSandbox:
    """The container, volumes and helper channel of one session."""

    def __init__(
        self,
        client: DockerClient,
        preparer: ImagePreparer,
        settings: SandboxSettings,
        session_id: str,
        environment: EnvironmentSpec,
        task_group: anyio.abc.TaskGroup,
        networks: SandboxNetworks,
        build_network: BuildNetwork | None = None,
        grant_egress: Callable[[], None] | None = None,
        records: VolumeRecords | None = None,
        warm: WarmSource | None = None,
        census: VolumeCensus | None = None,
    ) -> None:
        self._client = client
        self._preparer = preparer
        self._networks = networks
        self._build_network = build_network
        self._grant_egress = grant_egress  # sets the session's proxy policy (blocking) before its container is used
        self._address: str | None = None  # on the limited network, as registered with the egress proxy
        self._settings = settings
        self.session_id = session_id
        self._environment = environment
        self._task_group = task_group
        self._channel: HelperChannel | None = None
        self._lock = anyio.Lock()
        self.container_id: str | None = None
        self._files: dict[str, Path] = {}  # the read-only files: target -> host file
        self._files_in: str | None = None  # the container that has exactly them
        self._skill_links: dict[str, str] = {}  # /mnt/skills/<name> -> <skill_id>/<version> in the skill store
        self._linked: HelperChannel | None = None  # the channel (so the container) that has exactly those links
        self._calls = 0  # in flight; a sandbox with one is never idle
        self.last_used = time.monotonic()
        """When the last call ended (`time.monotonic()`): what idling is measured from."""
        self._notice: str | None = None  # for the model, once: why the shell's state is gone
        self._records = records if records is not None else MemoryRecords()
        self._warm = warm  # None: this definition has no warm pool
        self._census = census  # None: whether the session has volumes is always asked of the engine
        self._claiming: str | None = None  # the pooled set whose record in the store is being written
        self._volumes: str | None = None  # the volume set's key, once read from the records (`_resolve_volumes`)

    @property
    def _labels(self) -> dict[str, str]:
        return {LABEL_STORE: self._settings.store_id, LABEL_SESSION: self.session_id}

    def _resolve_volumes(self) -> str:
        """The key of the session's volume set: the pooled one it took, as the store records it, else its own id
        (blocking the first time)."""
        if self._volumes is None:
            self._volumes = self._records.session_volumes(self.session_id) or self.session_id.lower()
        return self._volumes

    def _volume_name(self, kind: str) -> str:
        return volume_name(self._settings.store_id, self._resolve_volumes(), kind)

    def _filters(self) -> list[list[str]]:
        """Label filters that find the session's containers: those made for it, and the pooled one it took (which
        keeps the pool's labels: Docker cannot relabel a container)."""
        found = [[f"{k}={v}" for k, v in self._labels.items()]]
        volumes = self._resolve_volumes()
        if volumes != self.session_id.lower():
            found.append([f"{LABEL_STORE}={self._settings.store_id}", f"{LABEL_POOL}={volumes}"])
        return found

    def _own_containers(self, running_only: bool = False) -> list[Any]:
        """The session's containers (blocking)."""
        status = {"status": "running"} if running_only else {}
        found: list[Any] = []
        for labels in self._filters():
            found += self._client.containers.list(all=not running_only, filters={"label": labels, **status})
        return found

    async def call(
        self, op: str, args: Mapping[str, JsonValue], timeout_s: float, *, reading: bool = False
    ) -> dict[str, Any]:
        """One helper request, on a container made or found as needed.

        `reading=True` (output reads) neither counts as use (a client polling outputs must not keep an idle
        container running) nor starts a container (one that stopped meanwhile: `SandboxUnavailableError`, and
        the next read goes through the archive).

        Raises `HelperError` (the tool failed; tell the model), `SandboxLostError` (the container died during the
        call), `TimeoutError` (no answer in time; the container is killed so nothing keeps running), or
        `SandboxUnavailableError`.
        """
        self._calls += 1
        try:
            return await self._call(op, args, timeout_s, reading)
        finally:
            self._calls -= 1
            if not reading:
                self.last_used = time.monotonic()

    def take_notice(self) -> str | None:
        """What the model must hear once about the sandbox (it was restarted after idling), if anything."""
        notice, self._notice = self._notice, None
        return notice

    async def _call(self, op: str, args: Mapping[str, JsonValue], timeout_s: float, reading: bool) -> dict[str, Any]:
        channel = await self._open_channel(reading)
        try:
            return await channel.request(op, args, timeout_s)
        except ChannelClosedError as exc:
            await self._drop_channel()  # the next call opens a new one (on a new container if this one died)
            raise SandboxLostError(await self._why_lost()) from exc
        except TimeoutError:
            logger.warning("session %s: sandbox call %s timed out; killing its container", self.session_id, op)
            try:
                await self._kill()
            except SandboxUnavailableError as exc:  # the timeout is what the caller must hear about
                logger.warning("session %s: could not remove its container: %s", self.session_id, exc)
            raise

    async def _why_lost(self) -> str:
        """What to tell the model about a call whose channel broke: the container died, or the engine went away."""
        import docker.errors

        try:
            await in_engine(self._client.ping)
        except EngineUnreachableError:
            return (
                "the connection to the Docker engine was lost during this call, so its outcome is unknown; "
                "files in /workspace and /mnt/session/outputs are kept"
            )
        except docker.errors.DockerException:
            pass
        return (
            "the sandbox container stopped during this call; the next call starts a new one "
            "(files in /workspace and /mnt/session/outputs are kept)"
        )

    async def _open_channel(self, reading: bool = False) -> HelperChannel:
        async with self._lock:
            if self._channel is not None and not self._channel.closed.is_set():
                return await self._linked_channel(self._channel)
            container_id = await self._container(reading)
            if self._channel is not None and not self._channel.closed.is_set():  # a pooled one's, taken just now
                return await self._linked_channel(self._channel)
            channel = await open_helper(self._client, container_id, self._task_group, f"session {self.session_id}")
            self._channel, self.container_id = channel, container_id
            return await self._linked_channel(channel)

    async def _adopt(self, warm: WarmSource) -> Pooled | None:
        """A pooled container made this session's, if the session is new (it has no volumes yet) and one waits.

        Its volumes become the session's: the store records the set's key before anything of the session is
        written there, so re-attach, idle stop, delete and reap all find them. This is a first call's wait, so it
        is one hop to an engine thread (`_adopt_now`), with no engine call in it as a rule. Which image is current
        is asked of the engine only when an image changed on it since the container's image was found current (the
        pool watches the engine's image events: `managed-sessions image build` and a `docker pull` retag from
        outside this process), or when the pool is not watching. Whether the session is new comes from the store
        and the `VolumeCensus` (the engine only before the start's listing is in). A
        container of an outdated image is discarded (and its like retired) and the session starts its own; one a
        session that is not new took goes back to the pool."""
        if not warm.offers(self._environment):
            return None
        pooled = warm.take(self._environment)
        if pooled is None:
            return None
        self._claiming = None
        try:
            verdict = await self._container_call(self._adopt_now, pooled)
        except BaseException:
            with anyio.CancelScope(shield=True):
                if self._claiming is None:  # nothing of the session's is recorded for it or written in it
                    warm.put_back(self._environment, pooled)
                else:
                    await warm.discard(pooled, stale=False)
            raise
        if verdict == "stale":
            await warm.discard(pooled, stale=True)
            return None
        if verdict == "not new":
            warm.put_back(self._environment, pooled)
            return None
        logger.info("session %s: took pooled container %s", self.session_id, pooled.container_id[:12])
        return pooled

    def _adopt_now(self, pooled: Pooled) -> Literal["taken", "stale", "not new"]:
        """Claims `pooled` if the session is new and its image current (blocking)."""
        if not self._is_new():
            return "not new"
        if not self._warm_unchanged(pooled) and pooled.image != self._preparer.current_tag(self._environment):
            return "stale"
        self._claim(pooled)
        return "taken"

    def _warm_unchanged(self, pooled: Pooled) -> bool:
        return self._warm is not None and self._warm.unchanged(pooled)

    async def _container_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        import docker.errors

        try:
            return await in_engine(fn, *args)
        except docker.errors.DockerException as exc:  # the engine answered, and refused
            raise SandboxUnavailableError(f"could not start the sandbox of {self.session_id!r}: {exc}") from exc

    def _is_new(self) -> bool:
        """Whether the session has no volumes at all yet: a container and an archive reader come only with them.
        No pooled set recorded for it and none of its own in the census; the engine is asked only when the census
        does not know yet (blocking)."""
        import docker.errors

        if self._resolve_volumes() != self.session_id.lower():
            return False
        name = self._volume_name("workspace")
        known = self._census.has(name) if self._census is not None else None
        if known is not None:
            return not known
        try:
            self._client.volumes.get(name)
        except docker.errors.NotFound:
            return True
        return False

    def _claim(self, pooled: Pooled) -> None:
        """Makes `pooled` the session's (blocking)."""
        self._claiming = pooled.volumes  # from here on the store may hold it as the session's: never pooled again
        self._records.own_volumes(self.session_id, pooled.volumes)
        self._volumes = pooled.volumes
        if self._files:
            self._place_all(pooled.container_id)
        else:
            self._files_in = pooled.container_id

    async def _container(self, reading: bool = False) -> str:
        """The id of this session's running container, made if need be (unless `reading`): for a new session, a
        pooled one when one waits (its channel is then open). Every way that fails is a `SandboxUnavailableError`
        (`EngineUnreachableError` when the engine does not answer), never a tool's failure: nothing ran, so the
        agent loop ends the turn instead of asking the model again."""
        import docker.errors

        if not reading and self._warm is not None and self.container_id is None and self._channel is None:
            adopted = await self._adopt(self._warm)
            if adopted is not None:
                self._channel, self.container_id = adopted.channel, adopted.container_id
                return adopted.container_id
        try:
            return await in_engine(self._running_container, reading)
        except docker.errors.DockerException as exc:  # the engine answered, and refused
            raise SandboxUnavailableError(f"could not start the sandbox of {self.session_id!r}: {exc}") from exc

    def _running_container(self, reading: bool = False) -> str:
        """The id of this session's running container, creating one if none runs unless `reading` (blocking)."""
        import docker.errors

        try:
            found = self._own_containers()
        except docker.errors.DockerException as exc:
            raise SandboxUnavailableError(f"no Docker engine answers: {exc}; run 'managed-sessions doctor'") from exc
        for container in found:
            if reading and container.status != "running":
                continue  # kept for the archive reads
            if container.status == "running":
                plan = self._plan()
                if plan is None or plan.proxy_url is None or _proxy_of(container) == plan.proxy_url:
                    logger.info("session %s: re-attached to container %s", self.session_id, container.short_id)
                    self._admit(container, plan)
                    return str(container.id)
                # Made when the proxy listened elsewhere (a restart found its port taken): cut off, so remade.
                logger.info(
                    "session %s: container %s expects the egress proxy elsewhere; remaking it",
                    self.session_id,
                    container.short_id,
                )
            elif container.status == "exited":  # stopped while idle, at a clean shutdown or killed: its shell is gone
                self._notice = RESTART_NOTICE
            container.remove(force=True)  # its files are in the volumes
        if reading:
            raise SandboxUnavailableError(f"the sandbox of {self.session_id!r} stopped meanwhile; try again")
        return self._create_container()

    def _create_container(self) -> str:
        image = self._preparer.prepare(self._environment, build_network=self._build_network)
        plan = self._plan()
        if self._census is not None:  # before the engine makes the volumes: the session is not new from here on
            self._census.add(self._volume_name("workspace"))
        container = start_container(
            self._client,
            self._settings,
            self._environment,
            image=image,
            plan=plan,
            name=f"ms-{self._settings.store_id[:12]}-{self.session_id.lower()}",
            labels=self._labels,
            volumes=self._resolve_volumes(),  # a pooled set the session took keeps the pool's labels
        )
        logger.info("session %s: started container %s from %s", self.session_id, container.short_id, image)
        self._admit(container, plan)
        self._place_all(str(container.id))
        return str(container.id)

    def _plan(self) -> NetworkPlan | None:
        """The network the container joins (set up on first need), or None for no network (blocking)."""
        kind = self._environment.networking.type
        return None if kind == "none" else self._networks.plan(self._client, kind)

    def _admit(self, container: Any, plan: NetworkPlan | None) -> None:
        """Tells the egress proxy the container's address on the limited network is this session's (blocking)."""
        if plan is None or plan.proxy_url is None:
            return
        container.reload()
        address = ((container.attrs.get("NetworkSettings") or {}).get("Networks") or {}).get(plan.network, {})
        address = address.get("IPAddress") if isinstance(address, dict) else None
        if not address:
            raise SandboxUnavailableError(
                f"the sandbox of {self.session_id!r} has no address on network {plan.network!r}; it will be remade"
            )
        if self._address is not None and self._address != address:
            self._networks.proxy.forget(self._address, self.session_id)
        if self._grant_egress is not None:
            self._grant_egress()
        self._address = address
        self._networks.proxy.admit(address, self.session_id)

    async def put_directory(self, source: Path, target: str) -> bool:
        """Copies the host tree `source` to `target` under /workspace, owned by the sandbox user.

        Parents are created. Returns False and copies nothing when `target` exists and is not an empty
        directory: on a resumed session the agent may have changed those files, so they are kept.
        """
        import docker.errors

        if not target.startswith(WORKSPACE + "/") or posixpath.normpath(target) != target:
            raise ValueError(f"target {target!r} must be a normalized absolute path under {WORKSPACE}/")
        async with self._lock:
            container_id = await self._container()
            try:
                placed = await in_engine(self._put_tree, container_id, source, target)
            except docker.errors.DockerException as exc:
                raise SandboxUnavailableError(f"could not copy files to {target!r} in the sandbox: {exc}") from exc
        if not placed:
            logger.info("session %s: %s already holds files; left as it is", self.session_id, target)
        return placed

    def _put_tree(self, container_id: str, source: Path, target: str) -> bool:
        container = self._client.containers.get(container_id)
        # As the sandbox user, so parents it makes are its own; "occupied" means: do not touch.
        probe = container.exec_run(
            ["sh", "-c", _PREPARE_TARGET, "sh", target], user=f"{SANDBOX_UID}:{SANDBOX_UID}", environment={}
        )
        if probe.exit_code != 0:
            raise SandboxUnavailableError(f"could not prepare {target!r} in the sandbox: {probe.output!r}")
        if b"occupied" in probe.output:
            return False
        with tempfile.TemporaryFile() as archive:  # spooled to disk: a repository can be large
            with tarfile.open(fileobj=archive, mode="w") as tar:
                tar.add(source, arcname=posixpath.basename(target), filter=_owned_by_sandbox_user)
            archive.seek(0)
            container.put_archive(posixpath.dirname(target), archive)
        return True

    async def place_files(self, files: Mapping[str, Path]) -> None:
        """Makes `files` the container's read-only files (root-owned, 0444, in a root-owned folder), now and in
        every container made for the session later; files placed before and not in `files` are removed."""
        async with self._lock:
            gone = [target for target in self._files if target not in files]
            changed = {t: s for t, s in files.items() if self._files.get(t) != s}
            self._files = dict(files)
            if not gone and not changed and self._files_in is not None:
                return
            container_id = await self._container()
            if self._files_in != container_id:
                await in_engine(self._place_all, container_id)
            else:
                await in_engine(self._place, container_id, changed, gone)

    def _place_all(self, container_id: str) -> None:
        self._files_in = None
        self._place(container_id, self._files, [])

    async def link_skills(self, links: Mapping[str, str]) -> None:
        """Makes `/mnt/skills/<name>` show `<skill_id>/<version>` of the read-only skill store for each of `links`,
        now and in every container made for the session later (one helper request: no copy, no engine call).
        Raises what `call` raises."""
        if dict(links) != self._skill_links:
            self._skill_links, self._linked = dict(links), None
        await self._open_channel()

    async def _linked_channel(self, channel: HelperChannel) -> HelperChannel:
        """`channel`, once its container has the session's skill links (made on first use of each channel)."""
        if self._skill_links and self._linked is not channel:
            try:
                await channel.request("link_skills", {"links": dict(self._skill_links)}, LINK_SKILLS_TIMEOUT_S)
            except (HelperError, ChannelClosedError, TimeoutError) as exc:  # nothing ran: the next call tries again
                raise SandboxUnavailableError(f"could not link the session's skills in the sandbox: {exc}") from exc
            self._linked = channel
        return channel

    def _place(self, container_id: str, files: Mapping[str, Path], gone: list[str]) -> None:
        import docker.errors

        try:
            self._place_in(self._client.containers.get(container_id), files, gone)
        except docker.errors.APIError as exc:  # the engine answered and refused (unreachable: `in_engine` says so)
            raise SandboxUnavailableError(f"could not place the session's files in the sandbox: {exc}") from exc
        self._files_in = container_id
        if files or gone:
            logger.info("session %s: %d read-only file(s) placed, %d removed", self.session_id, len(files), len(gone))

    def _place_in(self, container: Any, files: Mapping[str, Path], gone: list[str]) -> None:
        for target in gone:
            container.exec_run(["rm", "-f", "--", target], user="0:0", environment={})
        for target, source in files.items():
            folder = posixpath.dirname(target)
            made = container.exec_run(["mkdir", "-p", "--", folder], user="0:0", environment={})
            if made.exit_code != 0:
                raise SandboxUnavailableError(f"could not make {folder!r} in the sandbox: {made.output!r}")
            with tempfile.TemporaryFile() as archive:  # spooled to disk: an upload can be large
                with tarfile.open(fileobj=archive, mode="w") as tar:
                    if folder != "/":  # the folder too, so the daemon makes it root's (uploads/ is the agent's)
                        tar.addfile(_read_only(tarfile.TarInfo(posixpath.basename(folder)), tarfile.DIRTYPE))
                    member = _read_only(
                        tar.gettarinfo(source, posixpath.join(posixpath.basename(folder), posixpath.basename(target))),
                        tarfile.REGTYPE,
                    )
                    with source.open("rb") as content:
                        tar.addfile(member, content)
                archive.seek(0)
                container.put_archive(posixpath.dirname(folder), archive)

    async def _kill(self) -> None:
        await self._drop_channel()
        await in_engine(self._remove_containers)

    async def _drop_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            with anyio.CancelScope(shield=True):
                await channel.aclose()

    def _remove_containers(self) -> None:
        import docker.errors

        if self._address is not None:
            self._networks.proxy.forget(self._address, self.session_id)
            self._address = None
        try:
            for container in self._own_containers():
                container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise SandboxUnavailableError(f"the Docker engine refused to remove the container: {exc}") from exc

    async def stop_if_idle(self, idle_s: float) -> bool:
        """Stops the container (kept for output reads) if no call is in flight and none ended in the last
        `idle_s` seconds; whether it stopped one. Raises `SandboxUnavailableError`."""
        async with self._lock:
            if self._calls or time.monotonic() - self.last_used < idle_s:
                return False
            await self._drop_channel()
            return await in_engine(self._stop_containers)

    def _stop_containers(self) -> bool:
        import docker.errors

        if self._address is not None:
            self._networks.proxy.forget(self._address, self.session_id)
            self._address = None
        stopped = False
        try:
            for container in self._own_containers(running_only=True):
                container.stop(timeout=STOP_GRACE_S)
                stopped = True
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise SandboxUnavailableError(f"the Docker engine refused to stop the container: {exc}") from exc
        if stopped:
            logger.info("session %s: stopped its idle container (files kept)", self.session_id)
        return stopped

    async def output_source(self) -> OutputSource:
        """Where the outputs can be read without starting a container (see `OutputSource`). A session whose
        container was removed (archived) but whose volumes stay gets a container that is created, never started,
        to read them through. Raises `SandboxUnavailableError`."""
        import docker.errors

        async with self._lock:
            if self._channel is not None and not self._channel.closed.is_set():
                return "running"
            try:
                return await in_engine(self._find_output_source)
            except docker.errors.APIError as exc:
                raise SandboxUnavailableError(f"the Docker engine could not show the outputs: {exc}") from exc

    def _find_output_source(self) -> OutputSource:
        import docker.errors
        from docker.types import LogConfig

        found = self._own_containers()
        if any(c.status == "running" for c in found):
            return "running"
        if found:
            return str(found[0].id)
        try:
            self._client.volumes.get(self._volume_name("outputs"))
        except docker.errors.NotFound:
            return "none"
        image = self._preparer.prepare(self._environment, build_network=self._build_network)
        reader = self._client.containers.create(
            image,
            ["true"],
            labels=self._labels,
            network_mode="none",
            volumes={self._volume_name("outputs"): {"bind": OUTPUTS, "mode": "ro"}},
            log_config=LogConfig(type=LogConfig.types.NONE),
        )
        return str(reader.id)

    async def stop(self) -> None:
        """Removes the container; the volumes (and so the files) stay. Raises `SandboxUnavailableError`."""
        async with self._lock:
            await self._kill()

    async def destroy(self) -> None:
        """Removes the container and the volumes. Raises `SandboxUnavailableError`."""
        async with self._lock:
            await self._kill()
            await in_engine(self._remove_volumes)

    def _remove_volumes(self) -> None:
        for kind in ("workspace", "outputs"):
            remove_volume(self._client, self._volume_name(kind))


def start_container(
    client: DockerClient,
    settings: SandboxSettings,
    environment: EnvironmentSpec,
    *,
    image: str,
    plan: NetworkPlan | None,
    name: str,
    labels: Mapping[str, str],
    volumes: str,
) -> Any:
    """Creates (if missing) the volume set `volumes` and starts a container over it with the sandbox posture
    (blocking). A session's container and a warm pool's are made here alike, so they are hardened alike.
    Raises `SandboxUnavailableError` when the engine refuses."""
    import docker.errors
    from docker.types import LogConfig

    for kind in ("workspace", "outputs"):
        _ensure_volume(client, volume_name(settings.store_id, volumes, kind), labels)
    posture = posture_of(environment, settings.extra_ca_bundle is not None, plan.network if plan else "none")
    mounts: dict[str, dict[str, str]] = {
        volume_name(settings.store_id, volumes, "workspace"): {"bind": WORKSPACE, "mode": "rw"},
        volume_name(settings.store_id, volumes, "outputs"): {"bind": OUTPUTS, "mode": "rw"},
    }
    if settings.extra_ca_bundle is not None:
        mounts[str(settings.extra_ca_bundle)] = {"bind": CA_BUNDLE_IN_CONTAINER, "mode": "ro"}
    if settings.skill_store is not None:
        mounts[str(settings.skill_store)] = {"bind": SKILL_STORE, "mode": "ro"}
    options: dict[str, Any] = {}
    if posture.disk_mb is not None:
        options["storage_opt"] = {"size": f"{posture.disk_mb}m"}
    try:
        container = client.containers.create(
            image,
            ["sleep", "infinity"],
            name=name,
            labels=dict(labels),
            init=True,
            user=posture.user,
            working_dir=WORKSPACE,
            environment={**_container_env(environment, settings), **(plan.environment() if plan else {})},
            hostname="sandbox",
            network_mode=posture.network,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=f"{posture.memory_mb}m",
            memswap_limit=f"{posture.memory_mb}m",
            nano_cpus=int(posture.cpus * 1e9),
            pids_limit=posture.pids_limit,
            volumes=mounts,
            log_config=LogConfig(type=LogConfig.types.NONE),
            **options,
        )
        container.start()
    except docker.errors.APIError as exc:
        raise SandboxUnavailableError(_explain_create_failure(exc, posture)) from exc
    return container


def _ensure_volume(client: DockerClient, name: str, labels: Mapping[str, str]) -> None:
    import docker.errors

    try:
        client.volumes.get(name)
    except docker.errors.NotFound:
        client.volumes.create(name, labels=dict(labels))


def _container_env(environment: EnvironmentSpec, settings: SandboxSettings) -> dict[str, str]:
    env = {"HOME": "/home/sandbox", "LANG": "C.UTF-8", "TERM": "dumb", **environment.env}
    if settings.extra_ca_bundle is not None:
        for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "NODE_EXTRA_CA_CERTS", "CURL_CA_BUNDLE"):
            env.setdefault(name, CA_BUNDLE_IN_CONTAINER)
    return env


async def open_helper(
    client: DockerClient, container_id: str, task_group: anyio.abc.TaskGroup, owner: str
) -> HelperChannel:
    """Starts the helper in a running container and opens the channel to it (its reader runs in `task_group`).
    Raises `SandboxUnavailableError`."""
    import docker.errors

    try:
        stream = await open_exec(
            client.api, container_id, ["python3", "-u", HELPER_PATH], user=f"{SANDBOX_UID}:{SANDBOX_UID}"
        )
    except (ChannelClosedError, docker.errors.DockerException, OSError) as exc:
        raise SandboxUnavailableError(f"could not reach the sandbox of {owner}: {exc}") from exc
    channel = HelperChannel(stream, name=stream.exec_id[:12])
    task_group.start_soon(channel.run_reader, name=f"sandbox channel {owner}")
    try:
        await channel.request("ping", {}, CHANNEL_OPEN_TIMEOUT_S)
    except (ChannelClosedError, TimeoutError) as exc:
        await channel.aclose()
        raise SandboxUnavailableError(f"the sandbox helper of {owner} did not start; see the server log") from exc
    return channel


def _proxy_of(container: Any) -> str | None:
    """The egress proxy URL a container was made with (None: it has no proxy variables)."""
    for variable in (container.attrs.get("Config") or {}).get("Env") or ():
        name, _, value = variable.partition("=")
        if name == "HTTP_PROXY":
            return str(value)
    return None


_PREPARE_TARGET = (
    't="$1"; if [ -e "$t" ] && { [ ! -d "$t" ] || [ -n "$(ls -A "$t")" ]; }; then echo occupied; exit 0; fi; '
    'mkdir -p "$(dirname "$t")"'
)


def _read_only(info: tarfile.TarInfo, kind: bytes) -> tarfile.TarInfo:
    """Root's, readable by all, writable by none: the agent (uid 1000, no capabilities) can read it only."""
    info.type = kind
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o444
    return info


def _owned_by_sandbox_user(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = SANDBOX_UID
    info.uname = info.gname = ""
    info.mode &= 0o777  # no setuid/setgid/sticky bits from the host
    return info


def remove_volume(client: DockerClient, name: str) -> None:
    """Removes a volume (blocking); a missing one is fine, a refusal is logged (an engine that is down raises)."""
    import docker.errors

    try:
        client.volumes.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        logger.warning("could not remove volume %s: %s", name, exc)


def _explain_create_failure(exc: APIError, posture: Confinement) -> str:
    text = str(exc.explanation or exc)
    if posture.disk_mb is not None and "storage" in text.lower():
        return (
            f"this Docker engine cannot limit a container's disk (disk_mb={posture.disk_mb}): {text}. "
            "Remove disk_mb from the environment's resources, or use a storage driver with quotas."
        )
    return f"could not start the sandbox container: {text}"
