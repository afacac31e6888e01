"""A warm pool: started, hardened containers that no session owns yet, so a new session's first tool call does not
wait for one.

Each pooled definition (the server's default environment, `MANAGED_SESSIONS_WARM_POOL` of them, and that of each
environment with a `warm_pool` size) keeps up to its size of containers started, with the helper channel open. A
new session's sandbox takes one (`take`), and the pool makes a replacement in the background.

- Docker cannot add volumes to a running container, relabel a container or rename a volume, so a pooled container
  is made over its own empty volume set, named and labelled with a random key (`pool-<hex>`, `LABEL_POOL`), never a
  session's id. The session that takes it owns that set from then on: the store records the key (`own_volumes`)
  before anything of the session is written there, and re-attach, idle stop, delete and reap go by that record.
  The taken container keeps the pool's labels until it is remade (after idle stop, under the session's labels).
- A pooled container carries no session's data and no session's labels; it is made by `start_container` like a
  session's, so its posture is the same. Its helper's shell is started too (it ran `true` in /workspace), which
  is most of what a first call waits for once the container runs. It serves one session at most: `take` removes
  it from the pool.
- Its key is the derived image tag (`images.py`): a container whose image is no longer the definition's current one
  is discarded when taken, with the others of that image, and the session starts its own. The engine is asked
  which image is current at that point only when it reported an image event since the container's image was
  found current (`unchanged`, `_watch_images`), so a first call (`DockerSandbox._adopt`) makes no engine call as
  a rule; a session that turns out not to be new gives the container back (`put_back`). A changed definition is
  another pool: the environment's update retires the old one's containers (`keep(..., 0)`). Only `none` and
  `unrestricted` networking are pooled: a `limited` container is admitted to the egress proxy by address and
  session, which a container made before its session cannot be.
- Containers of a pool that a server left behind (it crashed, or its clean shutdown could not remove them) are
  reaped at the next start: `keys()` tells the reaper which pool containers are this process's own.
- Filling runs in the background, never on a request's path: an engine that is away, or a default image not
  built yet, leaves the pool empty (logged once, tried again with backoff) and sessions start their own
  containers as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from server.core.environments import EnvironmentSpec, LimitedNetwork
from server.core.errors import SandboxUnavailableError
from server.hands.docker.engine import in_engine
from server.hands.docker.images import ImagePreparer
from server.hands.docker.networks import SandboxNetworks
from server.hands.docker.sandbox import (
    LABEL_POOL,
    LABEL_STORE,
    Pooled,
    SandboxSettings,
    open_helper,
    remove_volume,
    start_container,
    volume_name,
)
from server.hands.helper.channel import ChannelClosedError, HelperError

if TYPE_CHECKING:
    from docker import DockerClient


__all__ = ["WarmPool", "definition_key"]

logger = logging.getLogger(__name__)

REFILL_DELAY_S = 0.5
"""How long a refill waits after a container was taken: starting one keeps the engine and a CPU busy for ~0.4 s,
which the taking session's first calls would otherwise wait behind."""

RETRY_FIRST_S = 30.0
RETRY_MAX_S = 600.0
"""A failed fill is tried again after 30 s, then twice as long each time up to 10 min: an engine that is away or
a default image not built yet costs a few calls an hour, and the pool fills soon after either is back."""

WATCH_RETRY_S = 1.0
"""How long the image-event watch waits before reconnecting; meanwhile a taken container's image is asked about."""

SHELL_START_TIMEOUT_S = 30.0
"""As long as the helper gets to start (`CHANNEL_OPEN_TIMEOUT_S`): a loaded machine, not a broken image."""


def definition_key(environment: EnvironmentSpec) -> str:
    """What a pool is for: the whole definition (image, packages, networking, limits, env), hashed."""
    return hashlib.sha256(environment.model_dump_json().encode()).hexdigest()[:16]


class WarmPool:
    """The pooled containers of one server; satisfies `sandbox.WarmSource`."""

    def __init__(
        self,
        docker_of: Callable[[], tuple[DockerClient, ImagePreparer]],
        settings: SandboxSettings,
        networks: SandboxNetworks,
        task_group: anyio.abc.TaskGroup,
    ) -> None:
        self._docker_of = docker_of
        self._settings = settings
        self._networks = networks
        self._task_group = task_group
        self._targets: dict[str, tuple[EnvironmentSpec, int]] = {}  # definition key -> (definition, size)
        self._owners: dict[str, dict[str, int]] = {}  # definition key -> who asked for it -> how many
        self._waiting: dict[str, list[Pooled]] = {}
        self._making: dict[str, int] = {}
        self._warned = False
        self._retry_s = RETRY_FIRST_S
        self._closed = False
        self._keys: set[str] = set()  # changed in the engine's threads too: under `_keys_lock`
        self._keys_lock = threading.Lock()
        self._watcher: threading.Thread | None = None  # `_watch_images`; its state below is under `_keys_lock` too
        self._events: Any = None  # the engine's event stream while it is open
        self._watching = False
        self._tried = threading.Event()  # the watch's first connection was tried
        self._seen = 0  # image events seen, plus one per (re)connection and loss of the stream
        self.changed = anyio.Event()
        """Set whenever a container joins or leaves the pool (then replaced), so a test can wait for it."""

    def keep(self, owner: str, environment: EnvironmentSpec, size: int) -> None:
        """Keeps `size` containers started for `environment` as `owner` asks (0: none); a definition several owners
        ask for gets the largest size. Filling starts in the background; containers past the size are removed."""
        if size > 0 and isinstance(environment.networking, LimitedNetwork):
            raise ValueError("a limited environment's containers are admitted to the egress proxy per session")
        key = definition_key(environment)
        owners = self._owners.setdefault(key, {})
        if size > 0:
            owners[owner] = size
        else:
            owners.pop(owner, None)
        wanted = max(owners.values(), default=0)
        if wanted:
            self._targets[key] = (environment, wanted)
            self._task_group.start_soon(self.fill, key, name="warm pool")
        else:
            self._targets.pop(key, None)
            self._owners.pop(key, None)
        waiting = self._waiting.get(key, [])
        if len(waiting) > wanted:
            self._waiting[key], extra = waiting[:wanted], waiting[wanted:]
            logger.info("warm pool: retiring %d container(s) no longer wanted", len(extra))
            self._task_group.start_soon(self._remove_all, extra, name="warm pool")

    def waiting(self, environment: EnvironmentSpec) -> list[str]:
        """The ids of the containers waiting for a session of `environment`."""
        return [p.container_id for p in self._waiting.get(definition_key(environment), [])]

    def keys(self) -> frozenset[str]:
        """Volume keys of the containers this pool made and holds: never reaped while it runs."""
        with self._keys_lock:
            return frozenset(self._keys)

    def offers(self, environment: EnvironmentSpec) -> bool:
        """Whether a container waits for `environment`."""
        return bool(self._waiting.get(definition_key(environment)))

    def take(self, environment: EnvironmentSpec) -> Pooled | None:
        """A pooled container for `environment`, now out of the pool; a replacement is made in the background."""
        key = definition_key(environment)
        waiting = self._waiting.get(key)
        if key not in self._targets or not waiting:
            return None
        pooled = waiting.pop(0)
        with self._keys_lock:
            self._keys.discard(pooled.volumes)  # the session's from now on: the store's record is what keeps it
        self._changed()
        self._task_group.start_soon(self._refill_later, key, name="warm pool")
        if pooled.channel.closed.is_set():  # the container died while it waited
            self._task_group.start_soon(self._remove, pooled, name="warm pool")
            return None
        return pooled

    async def discard(self, pooled: Pooled, *, stale: bool) -> None:
        """Removes a container taken but not used; `stale` (its image is outdated) retires all of that image."""
        doomed = [pooled]
        if stale:
            for key, waiting in self._waiting.items():
                doomed += [p for p in waiting if p.image == pooled.image]
                self._waiting[key] = [p for p in waiting if p.image != pooled.image]
            logger.info("warm pool: retiring containers of the outdated image %s", pooled.image)
        with anyio.CancelScope(shield=True):
            for one in doomed:
                await self._remove(one)
        self._changed()

    def put_back(self, environment: EnvironmentSpec, pooled: Pooled) -> None:
        """Returns a container `take` gave out that no session claimed (the session was not new, or the engine
        failed before the claim): nothing of a session was recorded for it or written in it, so it waits again,
        first in line. One the pool no longer wants (closed, retired, full again) is removed."""
        key = definition_key(environment)
        waiting = self._waiting.setdefault(key, [])
        if self._closed or key not in self._targets or len(waiting) >= self._targets[key][1]:
            self._task_group.start_soon(self._remove_all, [pooled], name="warm pool")
            return
        with self._keys_lock:
            self._keys.add(pooled.volumes)
        waiting.insert(0, pooled)
        self._changed()

    def unchanged(self, pooled: Pooled) -> bool:
        """Whether the engine reported no image event since `pooled`'s image was found current (thread-safe).

        The check of a taken container's image (`DockerSandbox._adopt`) asks the engine only when this is False:
        a first call's one engine call otherwise. The engine publishes an image event as it makes the change (a
        build's tag, a pull), so the gap left is the moment the event takes to reach this thread: an image changed
        that close to a take could as well have changed just after an engine check, between it and the call."""
        with self._keys_lock:
            return self._watching and pooled.seen is not None and pooled.seen == self._seen

    def _seen_now(self) -> int | None:
        """The image-event count to stamp a container with, read before its image is found current (blocking: the
        first call starts the watch and waits for it to connect, so the first container is stamped too)."""
        with self._keys_lock:
            if self._watcher is None and not self._closed:
                self._watcher = threading.Thread(target=self._watch_images, name="warm pool image events", daemon=True)
                self._watcher.start()
        self._tried.wait(WATCH_RETRY_S * 5)
        with self._keys_lock:
            return self._seen if self._watching else None

    def _watch_images(self) -> None:
        """Counts the engine's image events (a build, tag, pull, load or removal, by anyone): a container whose
        image was found current before the latest one has it checked again when taken. A thread of its own, as
        the stream blocks for the server's life; reconnects after `WATCH_RETRY_S`, ends when the pool closes."""
        while not self._closed:
            try:
                client, _ = self._docker_of()
                events = client.events(decode=True, filters={"type": "image"})
            except Exception:  # noqa: BLE001 - an engine away: not watching, so every take asks the engine
                self._tried.set()
                time.sleep(WATCH_RETRY_S)
                continue
            with self._keys_lock:
                self._events, self._watching = events, True
                self._seen += 1
                closed = self._closed
            self._tried.set()
            try:
                with contextlib.suppress(
                    Exception
                ):  # the stream broke (or `aclose` closed it): not watching until back
                    for _ in () if closed else events:
                        with self._keys_lock:
                            self._seen += 1
            finally:
                with self._keys_lock:
                    self._events, self._watching = None, False
                    self._seen += 1
                with contextlib.suppress(Exception):
                    events.close()
            if not self._closed:
                time.sleep(WATCH_RETRY_S)

    async def _refill_later(self, key: str) -> None:
        await anyio.sleep(REFILL_DELAY_S)
        await self.fill(key)

    async def fill(self, key: str) -> None:
        """Starts containers until the pool for `key` is full. Never raises: a failure leaves it short, logged."""
        import docker.errors

        try:
            while not self._closed and key in self._targets:
                environment, size = self._targets[key]
                if len(self._waiting.get(key, [])) + self._making.get(key, 0) >= size:
                    return
                self._making[key] = self._making.get(key, 0) + 1
                try:
                    pooled = await self._make(environment)
                    if self._closed or key not in self._targets:
                        await self._remove(pooled)
                        return
                    self._waiting.setdefault(key, []).append(pooled)
                    self._warned = False
                finally:
                    self._making[key] -= 1
                    self._changed()
        except (SandboxUnavailableError, docker.errors.DockerException) as exc:
            if not self._warned:  # once per outage, not every retry
                logger.warning("warm pool: no container waits for new sessions for now (tried again later): %s", exc)
            self._warned = True
            self._task_group.start_soon(self._retry_later, key, name="warm pool")
        except Exception:  # a background task: a bug here must not take the server's task group down
            logger.exception("warm pool: filling failed")
        else:
            self._retry_s = RETRY_FIRST_S

    async def _retry_later(self, key: str) -> None:
        """Tries filling again after a failure (the engine came back, the default image was built meanwhile)."""
        delay, self._retry_s = self._retry_s, min(self._retry_s * 2, RETRY_MAX_S)
        await anyio.sleep(delay)
        await self.fill(key)

    async def _make(self, environment: EnvironmentSpec) -> Pooled:
        client, _ = self._docker_of()
        container_id, volumes, image, seen = await in_engine(self._start, environment)
        try:
            channel = await open_helper(client, container_id, self._task_group, f"pooled container {volumes}")
            try:  # the helper starts its shell on the first bash call: started here, it is off that call's path
                await channel.request("bash", {"command": "true"}, SHELL_START_TIMEOUT_S)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await channel.aclose()
                raise
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await in_engine(self._remove_now, container_id, volumes)
            if isinstance(exc, HelperError | ChannelClosedError | TimeoutError):
                raise SandboxUnavailableError(f"the shell of a pooled container did not start: {exc!r}") from exc
            raise
        logger.info("warm pool: container %s waits for a session (%s)", container_id[:12], image)
        return Pooled(container_id=container_id, volumes=volumes, image=image, channel=channel, seen=seen)

    def _start(self, environment: EnvironmentSpec) -> tuple[str, str, str, int | None]:
        """Starts one pooled container (blocking); never builds the server's default image (`ImageMissingError`)."""
        client, preparer = self._docker_of()
        seen = self._seen_now()
        image = preparer.prepare(environment)
        kind = environment.networking.type
        plan = None if kind == "none" else self._networks.plan(client, kind)
        volumes = f"pool-{secrets.token_hex(6)}"
        with self._keys_lock:
            self._keys.add(volumes)
        store = self._settings.store_id
        container = start_container(
            client,
            self._settings,
            environment,
            image=image,
            plan=plan,
            name=f"ms-{store[:12]}-{volumes}",
            labels={LABEL_STORE: store, LABEL_POOL: volumes},
            volumes=volumes,
        )
        if self._closed:  # the server stopped meanwhile: its shutdown, which cannot wait for this thread, is over
            self._remove_now(str(container.id), volumes)
            raise SandboxUnavailableError("the warm pool closed while a container was being started")
        return str(container.id), volumes, image, seen

    async def _remove_all(self, doomed: list[Pooled]) -> None:
        for pooled in doomed:
            await self._remove(pooled)
        self._changed()

    async def _remove(self, pooled: Pooled) -> None:
        import docker.errors

        with anyio.CancelScope(shield=True):
            await pooled.channel.aclose()
            try:
                await in_engine(self._remove_now, pooled.container_id, pooled.volumes)
            except (SandboxUnavailableError, docker.errors.DockerException) as exc:
                logger.warning("warm pool: could not remove %s (the next start reaps it): %s", pooled.volumes, exc)

    def _remove_now(self, container_id: str, volumes: str) -> None:
        import docker.errors

        client, _ = self._docker_of()
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(container_id).remove(force=True)
        for kind in ("workspace", "outputs"):
            remove_volume(client, volume_name(self._settings.store_id, volumes, kind))
        with self._keys_lock:
            self._keys.discard(volumes)

    async def aclose(self) -> None:
        """Removes the containers still waiting: a stopped server keeps nothing running that no session needs."""
        self._closed = True
        with self._keys_lock:
            events = self._events
        if events is not None:  # ends the watch's blocking read
            with contextlib.suppress(Exception):
                events.close()
        waiting = [p for pool in self._waiting.values() for p in pool]
        self._waiting.clear()
        with anyio.CancelScope(shield=True):
            for pooled in waiting:
                await self._remove(pooled)
        while any(self._making.values()):  # one being made is removed by its `fill` once started
            await self.changed.wait()

    def _changed(self) -> None:
        changed, self.changed = self.changed, anyio.Event()
        changed.set()
