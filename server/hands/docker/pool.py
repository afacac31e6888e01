"""The Docker `SandboxBackend`: every session's sandbox, made on demand, and the reaping of what no
session owns any more.

Removing a session's container (archive) or its container and volumes (delete) never fails the
caller: the store is the truth, so when the engine does not answer the removal is *owed*. Owed
removals are tried again the next time a sandbox is asked for, and the start-up reaper removes
anything labelled with this store that no live session needs.

Idling: `stop_idle` stops the running containers of sessions that have had no sandbox call for a while (the
runtime calls it periodically, and once more at a clean shutdown). It covers containers this process never used
too (left running by an earlier server), counting their idle time from this pool's start. Output reads never start
a container: a running one answers through its helper, a stopped one through the engine's archive API
(`output_archive.py`), and a session with no volumes yet has no outputs.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import anyio
import anyio.abc
import anyio.to_thread
from pydantic import JsonValue

from server.core.environments import EnvironmentSpec, LimitedNetwork
from server.core.errors import InvalidRequestError, SandboxUnavailableError
from server.core.host_entries import check_host_entry
from server.core.sessions import EgressPosture, EgressRefusal
from server.egress.host_rules import HostRules
from server.egress.proxy import EgressPolicy, EgressProxy
from server.egress.web_fetch import FetchPolicy
from server.hands.docker.default_image import DefaultImageBuilds
from server.hands.docker.engine import in_engine, is_unreachable, unreachable_error
from server.hands.docker.images import BuildNetwork, ImagePreparer
from server.hands.docker.networks import SandboxNetworks
from server.hands.docker.output_archive import OUTPUTS_PATH, Chunks, list_archived, read_archived
from server.hands.docker.sandbox import (
    LABEL_POOL,
    LABEL_SESSION,
    LABEL_STORE,
    STOP_GRACE_S,
    DockerSandbox,
    MemoryRecords,
    SandboxSettings,
    VolumeCensus,
    VolumeRecords,
    posture_of,
    remove_volume,
)
from server.hands.docker.warm_pool import WarmPool
from server.hands.helper.channel import HelperError
from server.hands.helper.helper import mime_type
from server.hands.sandbox import (
    Confinement,
    Leftovers,
    OutputChunkData,
    OutputFileInfo,
    RunningSessions,
    SandboxLostError,
)
from server.hands.toolset import SandboxTools

if TYPE_CHECKING:
    from docker import DockerClient


__all__ = ["OUTPUT_CALL_TIMEOUT_S", "SandboxPool", "find_leftovers"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

OUTPUT_CALL_TIMEOUT_S = 60.0
STOPS_AT_ONCE = 8
"""Containers an idle sweep or a clean shutdown stops at a time (each waits on the engine in a thread of its own)."""


def find_leftovers(
    client: DockerClient,
    store_id: str,
    sessions: Mapping[str, bool],
    owners: Mapping[str, str] | None = None,
    pooled: Collection[str] | None = (),
) -> Leftovers:
    """Containers and volumes of deleted sessions, and containers of archived ones (blocking).

    `sessions` maps every existing session id to whether it is archived. A warm pool's container or volume
    (`LABEL_POOL`) belongs to the session `owners` (volume key -> session id) names; one nobody owns is a leftover
    unless its key is in `pooled` (waiting in this server's pool; None: in any server's, as a look from outside
    a running server must assume).
    """
    owners = owners or {}
    label = f"{LABEL_STORE}={store_id}"

    def owner(labels: Mapping[str, str]) -> str | None:
        """The session a container or volume is for; None: one of this server's pool."""
        key = labels.get(LABEL_POOL)
        if key is None or LABEL_SESSION in labels:
            return str(labels.get(LABEL_SESSION, ""))
        if key in owners:
            return owners[key]
        return None if pooled is None or key in pooled else ""

    found = Leftovers()
    for container in client.containers.list(all=True, filters={"label": label}):
        session_id = owner(container.labels)
        if session_id is not None and sessions.get(session_id, True):  # deleted (missing) or archived
            found.containers.append(str(container.name))
    for volume in client.volumes.list(filters={"label": label}):
        session_id = owner(volume.attrs.get("Labels") or {})
        if session_id is not None and session_id not in sessions:
            found.volumes.append(volume.name)
    return found


class SandboxPool:
    """Docker containers as sandboxes; satisfies `SandboxBackend` (see `hands/sandbox.py`)."""

    def __init__(
        self,
        settings: SandboxSettings,
        default_image: str,
        fetch_policy: FetchPolicy,
        task_group: anyio.abc.TaskGroup,
        *,
        records: VolumeRecords | None = None,
    ) -> None:
        self._settings = settings
        self._default_image = default_image
        self._fetch_policy = fetch_policy
        self._task_group = task_group
        self._sandboxes: dict[str, DockerSandbox] = {}
        self._client: DockerClient | None = None
        self._preparer: ImagePreparer | None = None
        self._owed: dict[str, tuple[EnvironmentSpec, bool]] = {}  # session id -> (environment, volumes too)
        self._proxy = EgressProxy(allow_private=settings.egress_allow_private)
        self._mcp_hosts: dict[str, tuple[str, ...]] = {}  # session id -> its agent's MCP hosts, as last told
        self._package_hosts: tuple[str, ...] | None = None
        self._package_hosts_lock = threading.Lock()
        self._networks = SandboxNetworks(settings.store_id, self._proxy, allow_private=settings.egress_allow_private)
        self._settling = False
        self._image_builds = DefaultImageBuilds(default_image, task_group, settings.default_image_base)
        self.reaped = anyio.Event()
        """Set once the first reap has finished (or found Docker unreachable)."""
        self._started = time.monotonic()
        self.idle_swept = anyio.Event()
        """Set when an idle sweep ends (then replaced by a fresh one), so a test can wait for the next sweep."""
        self._idle_warned = False
        self.idle_stopped: dict[str, int] = {}
        """Session id -> how many times its container was stopped while idle."""
        self._records = records if records is not None else MemoryRecords()
        self._census = VolumeCensus()
        """The volume sets that exist: listed at the first reap, then kept up by the sandboxes that make them."""
        self.warm = WarmPool(self._docker, settings, self._networks, task_group)
        """The started containers waiting for new sessions (see `keep_warm`)."""

    def _docker(self) -> tuple[DockerClient, ImagePreparer]:
        import docker.errors

        if self._client is None or self._preparer is None:
            try:
                self._client = docker.from_env()
            except docker.errors.DockerException as exc:
                if is_unreachable(exc):
                    raise unreachable_error(exc) from exc
                raise SandboxUnavailableError(
                    f"no Docker engine is configured: {exc}; run 'managed-sessions doctor'"
                ) from exc
            self._preparer = ImagePreparer(self._client, self._default_image, self._settings.extra_ca_bundle)
        return self._client, self._preparer

    def sandbox(self, session_id: str, environment: EnvironmentSpec) -> DockerSandbox:
        """The session's sandbox (nothing starts until its first call). Raises `SandboxUnavailableError`."""
        if not self._settling:
            self._owed.pop(session_id, None)  # it is wanted again: whoever asks removes it after, if need be
        if self._owed and not self._settling:
            self._settling = True
            self._task_group.start_soon(self._settle_owed, name="owed sandbox removals")
        sandbox = self._sandboxes.get(session_id)
        if sandbox is None:
            client, preparer = self._docker()
            sandbox = DockerSandbox(
                client,
                preparer,
                self._settings,
                session_id,
                environment,
                self._task_group,
                self._networks,
                self._build_network(session_id, environment),
                functools.partial(self._grant, session_id, environment),
                self._records,
                self.warm,
                self._census,
            )
            self._sandboxes[session_id] = sandbox
        return sandbox

    def tools(self, session_id: str, environment: EnvironmentSpec, *, mcp_hosts: Sequence[str] = ()) -> SandboxTools:
        sandbox = self.sandbox(session_id, environment)
        if isinstance(environment.networking, LimitedNetwork) and self._mcp_hosts.get(session_id) != tuple(mcp_hosts):
            self._mcp_hosts[session_id] = tuple(mcp_hosts)
            if self._package_hosts is not None or not environment.networking.allow_package_managers:
                self._grant(session_id, environment)  # a running container's policy follows (its start grants too)
        return SandboxTools(sandbox, self._fetch_policy)

    def _grant(self, session_id: str, environment: EnvironmentSpec) -> None:
        """Sets the session's proxy policy; blocking the first time package indexes are read (from a container's
        start, in a worker thread), cheap after."""
        if isinstance(environment.networking, LimitedNetwork) and environment.networking.allow_package_managers:
            self._load_package_hosts()
        entries = self._allowed_entries(environment, self._mcp_hosts.get(session_id, ()))
        if entries is not None:
            self._proxy.set_policy(session_id, self._policy(entries))

    def _load_package_hosts(self) -> tuple[str, ...]:
        with self._package_hosts_lock:
            if self._package_hosts is None:
                self._package_hosts = self._settings.package_hosts()
                logger.info("package indexes that allow_package_managers opens: %s", ", ".join(self._package_hosts))
            return self._package_hosts

    def _allowed_entries(self, environment: EnvironmentSpec, mcp_hosts: Sequence[str]) -> list[str] | None:
        """Every host a `limited` environment opens (None for the other modes), in the order they are shown."""
        networking = environment.networking
        if not isinstance(networking, LimitedNetwork):
            return None
        entries = list(networking.allowed_hosts)
        if networking.allow_package_managers:
            entries += self._package_hosts or ()
        if networking.allow_mcp_servers:
            entries += mcp_hosts
        return list(_normalised(tuple(entries)))

    @staticmethod
    def _policy(entries: list[str]) -> EgressPolicy:
        return EgressPolicy(HostRules.parse(entries), why="networking.allowed_hosts of the session's environment")

    def _build_network(self, session_id: str, environment: EnvironmentSpec) -> BuildNetwork | None:
        """For a `limited` environment: its image builds run on the limited network, through the proxy, under the
        same policy as its sandbox (a token in the proxy URL names the build, whose address is not known)."""
        if not isinstance(environment.networking, LimitedNetwork):
            return None

        @contextlib.contextmanager
        def open_build() -> Iterator[tuple[str, dict[str, str]]]:
            self._load_package_hosts()
            entries = self._allowed_entries(environment, ()) or []
            client, _ = self._docker()
            plan = self._networks.plan(client, "limited")
            principal = f"build for {session_id}"
            self._proxy.set_policy(principal, self._policy(entries))
            token = self._proxy.issue_token(principal)
            try:
                yield plan.network, plan.environment(credentials=f"build:{token}")
            finally:
                self._proxy.revoke_token(token)
                self._proxy.drop_policy(principal)

        return open_build

    def keep_warm(self, owner: str, environment: EnvironmentSpec, size: int) -> None:
        """Keeps `size` containers started for `environment` (see `warm_pool.py`)."""
        self.warm.keep(owner, environment, size)

    @property
    def default_environment(self) -> EnvironmentSpec:
        """The definition of a session created without an environment (what the warm pool serves)."""
        return EnvironmentSpec(image=self._default_image)

    async def build_image(self, image: str) -> None:
        """Builds the missing default image, or waits for its build already going (see `default_image.py`)."""
        await self._image_builds.build(image)

    async def stop(self, session_id: str, environment: EnvironmentSpec) -> None:
        """Removes the session's container (archive, interrupt): its files stay in its volumes.

        Never raises: when the engine cannot do it now, the removal is owed (see the module docstring)."""
        await self._remove(session_id, environment, volumes=False)

    async def destroy(self, session_id: str, environment: EnvironmentSpec) -> None:
        """Removes the session's container and volumes (delete); never raises, like `stop`."""
        await self._remove(session_id, environment, volumes=True)

    async def _remove(self, session_id: str, environment: EnvironmentSpec, volumes: bool) -> bool:
        try:
            sandbox = self.sandbox(session_id, environment)
            if volumes:
                self._sandboxes.pop(session_id, None)
                self._mcp_hosts.pop(session_id, None)
                self._proxy.drop_policy(session_id)
                await sandbox.destroy()
            else:
                await sandbox.stop()
        except SandboxUnavailableError as exc:
            owed_volumes = volumes or self._owed.get(session_id, (environment, False))[1]
            self._owed[session_id] = (environment, owed_volumes)
            logger.warning(
                "session %s: its %s will be removed once the Docker engine answers: %s",
                session_id,
                "container and volumes" if owed_volumes else "container",
                exc,
            )
            return False
        self._owed.pop(session_id, None)
        return True

    async def _settle_owed(self) -> None:
        """Tries each owed removal once; those the engine still cannot do stay owed."""
        try:
            for session_id, (environment, volumes) in list(self._owed.items()):
                if not await self._remove(session_id, environment, volumes):
                    break  # the engine is still away: the next sandbox request tries again
        except Exception:  # a background task: a bug here must not take the server's task group down
            logger.exception("removing owed sandboxes failed")
        finally:
            self._settling = False

    async def reap(self, sessions: Mapping[str, bool]) -> Leftovers:
        """Removes leftovers (see `find_leftovers`); returns what it removed. Raises `SandboxUnavailableError`."""
        import docker.errors

        try:
            client, _ = self._docker()
        except SandboxUnavailableError:
            self.reaped.set()
            raise

        def sweep() -> Leftovers:
            import docker.errors

            owners = self._records.volume_owners()
            found = find_leftovers(client, self._settings.store_id, sessions, owners, self.warm.keys())
            for name in found.containers:
                with contextlib.suppress(docker.errors.NotFound):
                    client.containers.get(name).remove(force=True)
            for name in found.volumes:
                remove_volume(client, name)
            label = f"{LABEL_STORE}={self._settings.store_id}"  # what remains, so new sessions are told apart
            self._census.listed(str(v.name) for v in client.volumes.list(filters={"label": label}))
            return found

        try:
            swept = await in_engine(sweep)
        except docker.errors.DockerException as exc:
            raise SandboxUnavailableError(f"the Docker engine refused to remove leftovers: {exc}") from exc
        finally:
            self.reaped.set()
        if swept.containers or swept.volumes:
            logger.info(
                "reaped %d container(s) and %d volume(s) no session needs", len(swept.containers), len(swept.volumes)
            )
        return swept

    async def leftovers(self, sessions: Mapping[str, bool]) -> Leftovers:
        """What `reap` would remove (see `find_leftovers`), but for pool containers nobody owns: another server may
        be running with them waiting (its start reaps its predecessor's). Raises `SandboxUnavailableError`."""
        import docker.errors

        client, _ = self._docker()
        try:
            owners = await in_engine(self._records.volume_owners)
            return await in_engine(find_leftovers, client, self._settings.store_id, sessions, owners, None)
        except docker.errors.DockerException as exc:
            raise SandboxUnavailableError(f"the Docker engine could not list leftovers: {exc}") from exc

    def posture(self, session_id: str, environment: EnvironmentSpec, *, mcp_hosts: Sequence[str] = ()) -> Confinement:
        kind = environment.networking.type
        short = self._settings.store_id[:12].lower()
        network = {"limited": f"ms-{short}-limited", "unrestricted": f"ms-{short}-open"}.get(kind, "none")
        confinement = posture_of(environment, self._settings.extra_ca_bundle is not None, network)
        return dataclasses.replace(confinement, egress=self._egress_posture(session_id, environment, mcp_hosts))

    def _egress_posture(self, session_id: str, environment: EnvironmentSpec, mcp_hosts: Sequence[str]) -> EgressPosture:
        kind = environment.networking.type
        filters = self._networks.filters
        guarded = (
            "not known yet: the sandbox networks are set up when the first sandbox with a network starts"
            if filters is None
            else f"packet filters {filters.detail}"
        )
        private = self._settings.egress_allow_private
        if kind == "none":
            return EgressPosture(mode="none", enforcement="the container has no network interface but loopback")
        if kind == "unrestricted":
            return EgressPosture(
                mode="unrestricted",
                enforcement=f"the public internet is open; the host and private networks: {guarded}",
                private_addresses_allowed=private,
            )
        refusals = [
            EgressRefusal(
                host=r.host, port=r.port, reason=r.reason, count=r.count, first_at=r.first_at, last_at=r.last_at
            )
            for r in self._proxy.refusals(session_id)
        ]
        return EgressPosture(
            mode="limited",
            enforcement=(
                "an internal Docker network with no route out; its only exit is this server's egress proxy, which "
                f"allows the hosts below; the host's other services: {guarded}"
            ),
            proxy=self._networks.proxy_url,
            allowed_hosts=self._allowed_entries(environment, mcp_hosts) or [],
            private_addresses_allowed=private,
            recent_refusals=refusals,
        )

    async def aclose(self) -> None:
        """Removes the warm pool's waiting containers and stops the egress proxy (its thread, listeners and
        relays); sessions' sandboxes are left as they are (the runtime has stopped those no running session needs)."""
        await self.warm.aclose()
        await anyio.to_thread.run_sync(self._proxy.close)

    async def put_directory(self, session_id: str, environment: EnvironmentSpec, source: Path, target: str) -> bool:
        """Copies a host tree into the session's /workspace (see `DockerSandbox.put_directory`)."""
        return await self.sandbox(session_id, environment).put_directory(source, target)

    async def place_files(self, session_id: str, environment: EnvironmentSpec, files: Mapping[str, Path]) -> None:
        """The session's read-only files (see `DockerSandbox.place_files`)."""
        await self.sandbox(session_id, environment).place_files(files)

    async def link_skills(self, session_id: str, environment: EnvironmentSpec, links: Mapping[str, str]) -> None:
        """The session's skills under /mnt/skills (see `DockerSandbox.link_skills`)."""
        await self.sandbox(session_id, environment).link_skills(links)

    async def list_outputs(self, session_id: str, environment: EnvironmentSpec) -> list[OutputFileInfo]:
        """The output files, never starting a container (see the module docstring)."""
        source = await self.sandbox(session_id, environment).output_source()
        if source == "none":
            return []
        if source != "running":
            return await self._from_archive(session_id, list_archived, self._archive_chunks(source))
        result = await self._output_call(session_id, environment, "list_outputs", {})
        return [
            OutputFileInfo(
                path=f["path"],
                size_bytes=f["size_bytes"],
                mime_type=mime_type(f["path"]),  # guessed here either way: the image's table may differ
                sha256=f["sha256"],
                modified_at=f["modified_at"][:19] + ".000Z",  # whole seconds, as the archive has them
            )
            for f in result["files"]
        ]

    async def read_output(
        self, session_id: str, environment: EnvironmentSpec, path: str, offset: int, max_bytes: int
    ) -> OutputChunkData:
        """Part of an output file, never starting a container; refusals are the helper's either way."""
        source = await self.sandbox(session_id, environment).output_source()
        if source == "none":
            raise InvalidRequestError(f"read_output: {path}: no such file or directory")
        if source != "running":
            opener = functools.partial(self._archive_chunks, source)
            return await self._from_archive(session_id, read_archived, opener, path, offset, max_bytes)
        args: dict[str, JsonValue] = {"path": path, "offset": offset, "max_bytes": max_bytes}
        result = await self._output_call(session_id, environment, "read_output", args)
        return OutputChunkData(
            mime_type=mime_type(path),
            size_bytes=result["size_bytes"],
            data=base64.b64decode(result["data"]),
            eof=result["eof"],
        )

    def _archive_chunks(self, container_id: str) -> Chunks:
        """The outputs folder of a container that is not running, as the engine streams it (blocking)."""
        client, _ = self._docker()
        chunks, _ = client.api.get_archive(container_id, OUTPUTS_PATH)
        return chunks  # type: ignore[no-any-return]

    async def _from_archive(self, session_id: str, read: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs an archive read in the engine's threads, its engine failures as the errors a client is told."""
        import docker.errors

        try:
            return await in_engine(read, *args, **kwargs)
        except docker.errors.DockerException as exc:
            raise SandboxUnavailableError(f"the outputs of {session_id!r} could not be read; try again: {exc}") from exc

    async def _output_call(
        self, session_id: str, environment: EnvironmentSpec, op: str, args: dict[str, JsonValue]
    ) -> dict[str, Any]:
        """A helper call about output files, its failures as the errors a client is told."""
        sandbox = self.sandbox(session_id, environment)
        try:
            return await sandbox.call(op, args, OUTPUT_CALL_TIMEOUT_S, reading=True)
        except HelperError as exc:
            raise InvalidRequestError(str(exc)) from exc
        except (SandboxLostError, TimeoutError) as exc:
            raise SandboxUnavailableError(f"the sandbox of {session_id!r} did not answer; try again") from exc

    async def stop_idle(self, idle_s: float, running: RunningSessions) -> list[str]:
        """Stops the running containers of this store's sessions that are not running (`running` is asked once
        the candidates are known, so a run that started since is seen) and had no sandbox call for `idle_s`
        seconds (0: all of them, as a clean shutdown does); returns their session ids. Never raises: an engine
        away or refusing is logged, and the next sweep tries again."""
        swept, self.idle_swept = self.idle_swept, anyio.Event()
        stopped: list[str] = []
        try:
            candidates = await self._running_sessions()
            keep = await running() if candidates else frozenset[str]()
            limiter = anyio.CapacityLimiter(STOPS_AT_ONCE)
            unavailable: list[SandboxUnavailableError] = []

            async def stop(session_id: str) -> None:
                async with limiter:
                    try:
                        if await self._stop_if_idle(session_id, idle_s):
                            stopped.append(session_id)
                            self.idle_stopped[session_id] = self.idle_stopped.get(session_id, 0) + 1
                    except SandboxUnavailableError as exc:  # told once, below, as a sweep the engine cut short
                        unavailable.append(exc)

            async with anyio.create_task_group() as group:  # at once: a stdio client waits ~2 s before a SIGTERM
                for session_id in candidates:
                    if session_id not in keep:
                        group.start_soon(stop, session_id)
            if unavailable:
                raise unavailable[0]
        except SandboxUnavailableError as exc:
            if not self._idle_warned:  # once per outage, not every sweep
                logger.warning("idle sandboxes stay up for now: %s", exc)
            self._idle_warned = True
        except Exception:  # a background task: a bug here must not take the server's task group down
            logger.exception("stopping idle sandboxes failed")
        else:
            self._idle_warned = False
        finally:
            swept.set()
        return stopped

    async def _running_sessions(self) -> list[str]:
        """The session ids of this store's running containers (a pooled one a session took counts as its)."""
        import docker.errors

        client, _ = self._docker()
        label = f"{LABEL_STORE}={self._settings.store_id}"
        try:
            pooled = self.warm.keys()
            running = await in_engine(client.containers.list, filters={"label": label, "status": "running"})
            taken = [c for c in running if LABEL_SESSION not in c.labels and c.labels.get(LABEL_POOL) not in pooled]
            owners = await in_engine(self._records.volume_owners) if taken else {}
        except docker.errors.DockerException as exc:
            raise SandboxUnavailableError(f"the Docker engine could not list containers: {exc}") from exc
        ids = [str(c.labels[LABEL_SESSION]) for c in running if c.labels.get(LABEL_SESSION)]
        return ids + [owners[key] for c in taken if (key := c.labels.get(LABEL_POOL)) in owners]

    async def _stop_if_idle(self, session_id: str, idle_s: float) -> bool:
        sandbox = self._sandboxes.get(session_id)
        if sandbox is not None:
            return await sandbox.stop_if_idle(idle_s)
        if time.monotonic() - self._started < idle_s:
            return False  # left by an earlier server: idle since this one started, at least
        return await self._stop_unowned(session_id)

    async def _stop_unowned(self, session_id: str) -> bool:
        """Stops a container no sandbox of this process has used (it is found again if asked for): one made for the
        session, or the pooled one it took."""
        import docker.errors

        client, _ = self._docker()
        store = f"{LABEL_STORE}={self._settings.store_id}"

        def stop_all() -> bool:
            found = client.containers.list(
                filters={"label": [store, f"{LABEL_SESSION}={session_id}"], "status": "running"}
            )
            if (volumes := self._records.session_volumes(session_id)) is not None:
                found += client.containers.list(
                    filters={"label": [store, f"{LABEL_POOL}={volumes}"], "status": "running"}
                )
            for container in found:
                container.stop(timeout=STOP_GRACE_S)
            return bool(found)

        try:
            stopped = await in_engine(stop_all)
        except docker.errors.DockerException as exc:
            raise SandboxUnavailableError(f"the Docker engine refused to stop a container: {exc}") from exc
        if stopped:
            logger.info("session %s: stopped its idle container (files kept)", session_id)
        return stopped


@functools.lru_cache(maxsize=256)
def _normalised(entries: tuple[str, ...]) -> tuple[str, ...]:
    """Entries in `allowed_hosts` form, each once; one read from this machine's configuration that is not is
    skipped (and logged once). Cached: `get_session` shows them, and they change only with the environment."""
    kept: dict[str, None] = {}
    for entry in entries:
        try:
            kept[check_host_entry(entry)] = None
        except ValueError as exc:
            logger.warning("egress: skipping host entry %r: %s", entry, exc)
    return tuple(kept)
