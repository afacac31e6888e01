"""The warm pool against a real engine: a new session's first call runs in a pooled container, which no other
session ever gets; an image change retires pooled containers; size 0 makes none; and a restart keeps what a session
took (its files, its volumes) while a crashed server's pool containers are reaped."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import docker
import docker.errors
import pytest

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.environments import EnvironmentSpec
from server.core.sessions import Session
from server.hands.docker.pool import SandboxPool
from server.hands.docker.sandbox import LABEL_POOL, LABEL_SESSION, LABEL_STORE, RESTART_NOTICE
from server.hands.toolset import SandboxTools
from server.services.definitions import EnvironmentChanges
from server.services.runtime import Runtime, open_runtime
from server.services.sessions import NewSession

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

HANG_GUARD_S = 120
"""Only stops a test that hangs; what a test checks is states, never how long something took."""

POSTURE_FIELDS = ("CapDrop", "SecurityOpt", "NetworkMode", "Memory", "MemorySwap", "NanoCpus", "PidsLimit", "Init")


@pytest.fixture
def pool_config(data_dir: Path, docker_client: docker.DockerClient) -> ServerConfig:
    return ServerConfig(data_dir=data_dir, image=DEFAULT_IMAGE, warm_pool=1)


@asynccontextmanager
async def serving(config: ServerConfig) -> AsyncIterator[tuple[Runtime, SandboxPool]]:
    async with open_runtime(config) as runtime:
        pool = runtime.sandboxes
        assert isinstance(pool, SandboxPool)
        yield runtime, pool


async def filled(pool: SandboxPool, size: int = 1) -> list[str]:
    """Waits until `size` containers wait in the default environment's pool; their ids."""
    with anyio.fail_after(HANG_GUARD_S):
        while len(pool.warm.waiting(pool.default_environment)) < size:
            await pool.warm.changed.wait()
    return pool.warm.waiting(pool.default_environment)


async def new_session(runtime: Runtime) -> tuple[Session, SandboxTools]:
    session = await runtime.sessions.create(NewSession())
    return session, runtime.sandboxes.tools(session.id, session.environment)


async def bash(tools: SandboxTools, command: str) -> str:
    result = await tools.execute("bash", {"command": command})
    assert not result.is_error, result.as_text()
    return result.as_text()


def container_of(pool: SandboxPool, session: Session) -> str | None:
    return pool.sandbox(session.id, session.environment).container_id


def pool_containers(client: docker.DockerClient, store_id: str) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": [f"{LABEL_STORE}={store_id}", LABEL_POOL]}))


def posture(client: docker.DockerClient, container_id: str) -> dict[str, Any]:
    attrs = client.containers.get(container_id).attrs
    host = attrs["HostConfig"]
    return {
        **{name: host.get(name) for name in POSTURE_FIELDS},
        "User": attrs["Config"]["User"],
        "Mounts": sorted(m["Destination"] for m in attrs["Mounts"]),
    }


async def test_a_new_sessions_first_call_runs_in_a_pooled_container_that_no_other_session_gets(
    pool_config: ServerConfig, docker_client: docker.DockerClient
) -> None:
    async with serving(pool_config) as (runtime, pool):
        [pooled] = await filled(pool)
        assert docker_client.containers.get(pooled).labels.get(LABEL_SESSION) is None  # nothing of a session
        first, first_tools = await new_session(runtime)
        listing = await bash(first_tools, "find /workspace /mnt/session/outputs -mindepth 1 | wc -l; echo mine > f")
        assert listing == "0"  # both folders empty
        assert container_of(pool, first) == pooled

        [refilled] = await filled(pool)
        assert refilled != pooled
        second, second_tools = await new_session(runtime)
        assert await bash(second_tools, "ls -A /workspace") == ""  # not the first session's files
        assert container_of(pool, second) == refilled
        assert {container_of(pool, first), container_of(pool, second)} == {pooled, refilled}

        third, third_tools = await new_session(runtime)  # the pool may be refilling: either way, its own
        await bash(third_tools, "true")
        assert container_of(pool, third) not in {pooled, refilled}
        for session in (first, second, third):
            await runtime.sessions.delete(session.id)
        store_id = runtime.store.store_id
    assert pool_containers(docker_client, store_id) == []  # a clean shutdown removes the waiting one


async def test_a_pool_of_size_zero_makes_no_container(
    pool_config: ServerConfig, docker_client: docker.DockerClient
) -> None:
    async with serving(dataclasses.replace(pool_config, warm_pool=0)) as (runtime, pool):
        with anyio.fail_after(HANG_GUARD_S):
            await pool.reaped.wait()  # the pool would start filling after the reap
        session, tools = await new_session(runtime)
        await bash(tools, "true")
        assert pool_containers(docker_client, runtime.store.store_id) == []
        assert pool.warm.waiting(pool.default_environment) == []
        [container] = docker_client.containers.list(filters={"label": f"{LABEL_SESSION}={session.id}"})
        assert container.id == container_of(pool, session)
        await runtime.sessions.delete(session.id)


@pytest.fixture
def own_default_image(docker_client: docker.DockerClient) -> Iterator[tuple[str, list[str]]]:
    """A default image tag of this test's own (the shared default's content), and the images to remove after."""
    tag = f"managed-sessions-sandbox:pool-{secrets.token_hex(4)}"
    docker_client.images.get(DEFAULT_IMAGE).tag(tag)
    made: list[str] = [tag]
    yield tag, made
    for name in reversed(made):
        with contextlib.suppress(docker.errors.APIError):  # still used by a container, or gone
            docker_client.images.remove(name, force=True)


async def test_a_changed_image_retires_the_pooled_containers_made_from_the_old_one(
    pool_config: ServerConfig, docker_client: docker.DockerClient, own_default_image: tuple[str, list[str]]
) -> None:
    tag, made = own_default_image
    async with serving(dataclasses.replace(pool_config, image=tag)) as (runtime, pool):
        [old] = await filled(pool)
        old_image = docker_client.containers.get(old).attrs["Config"]["Image"]

        def rebuild_default() -> None:  # as `managed-sessions image build` would: same tag, another image
            dockerfile = io.BytesIO(f"FROM {DEFAULT_IMAGE}\nLABEL io.managed-sessions.test-rebuild={tag}\n".encode())
            image, _ = docker_client.images.build(fileobj=dockerfile, tag=tag, rm=True)
            made.append(str(image.id))

        await anyio.to_thread.run_sync(rebuild_default)
        session, tools = await new_session(runtime)
        with anyio.fail_after(HANG_GUARD_S):  # the new derived image is built on the way
            await bash(tools, "true")
        mine = container_of(pool, session)
        assert mine != old
        new_image = docker_client.containers.get(mine).attrs["Config"]["Image"]
        made.append(new_image)
        assert new_image != old_image
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(old)
        [refilled] = await filled(pool)
        assert docker_client.containers.get(refilled).attrs["Config"]["Image"] == new_image
        await runtime.sessions.delete(session.id)


async def test_a_restart_keeps_what_a_session_took_and_reaps_a_crashed_servers_pool(
    pool_config: ServerConfig, docker_client: docker.DockerClient
) -> None:
    async with serving(pool_config) as (runtime, pool):
        [pooled] = await filled(pool)
        pooled_posture = posture(docker_client, pooled)
        session, tools = await new_session(runtime)
        await bash(tools, "echo kept > /workspace/w.txt; echo out > /mnt/session/outputs/o.txt")
        assert container_of(pool, session) == pooled
        store_id = runtime.store.store_id
        volumes = runtime.store.session_volumes(session.id)
        assert volumes is not None
        assert docker_client.containers.get(pooled).labels[LABEL_POOL] == volumes
    assert docker_client.containers.get(pooled).status == "exited"  # idle: stopped by the clean shutdown, kept

    # What a server that crashed leaves: a started pool container nobody took, with its volumes.
    stray = f"pool-{secrets.token_hex(6)}"
    labels = {LABEL_STORE: store_id, LABEL_POOL: stray}
    for kind in ("workspace", "outputs"):
        docker_client.volumes.create(f"ms-{store_id[:12]}-{stray}-{kind}", labels=labels)
    crashed = docker_client.containers.run(DEFAULT_IMAGE, ["sleep", "infinity"], labels=labels, detach=True)

    async with serving(pool_config) as (runtime, pool):
        with anyio.fail_after(HANG_GUARD_S):
            await pool.reaped.wait()
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(crashed.id)
        assert docker_client.volumes.list(filters={"label": f"{LABEL_POOL}={stray}"}) == []
        assert len(docker_client.volumes.list(filters={"label": f"{LABEL_POOL}={volumes}"})) == 2  # owned: kept
        left = await runtime.sandboxes.leftovers(runtime.store.session_ids())
        assert (left.containers, left.volumes) == ([], [])  # nothing the session owns counts as a leftover

        again = runtime.sandboxes.tools(session.id, session.environment)
        notice, files = (await bash(again, "cat /workspace/w.txt /mnt/session/outputs/o.txt")).split("\n", 1)
        assert files == "kept\nout"
        assert notice == RESTART_NOTICE  # a new container over the same volumes
        remade = container_of(pool, session)
        assert remade != pooled
        assert docker_client.containers.get(remade).labels[LABEL_SESSION] == session.id
        assert posture(docker_client, remade) == pooled_posture  # hardened alike
        listing = await runtime.sandboxes.list_outputs(session.id, session.environment)
        assert [f.path for f in listing] == ["o.txt"]

        await runtime.sessions.delete(session.id)
        assert docker_client.volumes.list(filters={"label": f"{LABEL_POOL}={volumes}"}) == []
        assert runtime.store.session_volumes(session.id) is None


async def test_a_session_with_volumes_of_its_own_never_takes_a_pooled_container(
    pool_config: ServerConfig, docker_client: docker.DockerClient
) -> None:
    async with serving(dataclasses.replace(pool_config, warm_pool=0)) as (runtime, pool):
        session, tools = await new_session(runtime)
        await bash(tools, "echo kept > /workspace/k.txt")
        own = container_of(pool, session)

    async with serving(pool_config) as (runtime, pool):  # the restart's reap lists the session's volumes
        [pooled] = await filled(pool)
        again = runtime.sandboxes.tools(session.id, session.environment)
        assert (await bash(again, "cat /workspace/k.txt")).endswith("kept")
        remade = container_of(pool, session)
        assert remade not in {pooled, own}
        assert docker_client.containers.get(remade).labels[LABEL_SESSION] == session.id
        assert runtime.store.session_volumes(session.id) is None
        assert pool.warm.waiting(pool.default_environment) == [pooled]  # given back, still nobody's
        await runtime.sessions.delete(session.id)


async def waiting_for(pool: SandboxPool, environment: EnvironmentSpec, size: int = 1) -> list[str]:
    with anyio.fail_after(HANG_GUARD_S):
        while len(pool.warm.waiting(environment)) < size:
            await pool.warm.changed.wait()
    return pool.warm.waiting(environment)


async def test_an_environment_marked_for_a_pool_gets_one_and_changing_it_retires_its_containers(
    pool_config: ServerConfig, docker_client: docker.DockerClient
) -> None:
    async with serving(dataclasses.replace(pool_config, warm_pool=0)) as (runtime, pool):
        changes = EnvironmentChanges(name="pooled", env={"MARK": "one"}, warm_pool=1)
        environment = await runtime.definitions.create_environment(changes)
        one = environment.spec().model_copy(update={"image": DEFAULT_IMAGE})  # as a session snapshots it
        [old] = await waiting_for(pool, one)
        assert pool.warm.waiting(pool.default_environment) == []  # the default environment has none here

        await runtime.definitions.update_environment(environment.id, EnvironmentChanges(env={"MARK": "two"}))
        two = one.model_copy(update={"env": {"MARK": "two"}})
        [new] = await waiting_for(pool, two)
        with anyio.fail_after(HANG_GUARD_S):
            while old in [c.id for c in pool_containers(docker_client, runtime.store.store_id)]:
                await pool.warm.changed.wait()
        assert pool.warm.waiting(one) == []

        session = await runtime.sessions.create(NewSession(environment_id=environment.id))
        tools = runtime.sandboxes.tools(session.id, session.environment)
        assert await bash(tools, "echo $MARK") == "two"
        assert container_of(pool, session) == new

        await runtime.definitions.archive_environment(environment.id)  # no new session can use it: no pool
        with anyio.fail_after(HANG_GUARD_S):
            while [c.id for c in pool_containers(docker_client, runtime.store.store_id)] != [new]:  # the session's
                await pool.warm.changed.wait()
        await runtime.sessions.delete(session.id)


async def test_files_placed_before_the_first_call_land_in_the_pooled_container(
    pool_config: ServerConfig, tmp_path: Path
) -> None:
    upload = tmp_path / "notes.txt"
    upload.write_text("read me\n")
    async with serving(pool_config) as (runtime, pool):
        [pooled] = await filled(pool)
        session, tools = await new_session(runtime)
        await runtime.sandboxes.place_files(session.id, session.environment, {"/mnt/session/uploads/notes.txt": upload})
        assert container_of(pool, session) == pooled
        assert await bash(tools, "cat /mnt/session/uploads/notes.txt; ls /workspace | wc -l") == "read me\n0"
        await runtime.sessions.delete(session.id)


async def test_a_container_whose_start_ends_after_the_pool_closed_is_removed_at_once(
    pool_config: ServerConfig, docker_client: docker.DockerClient
) -> None:
    """A shutdown waits only so long for a container being made; the engine's thread goes on after it, and what
    it started then must not be left running with no server to remove it."""
    from server.core.errors import SandboxUnavailableError
    from server.hands.docker.engine import in_engine

    with anyio.fail_after(HANG_GUARD_S):
        async with serving(dataclasses.replace(pool_config, warm_pool=0)) as (runtime, pool):
            store_id = runtime.store.store_id
            await pool.warm.aclose()  # what a shutdown does first
            with pytest.raises(SandboxUnavailableError, match="closed while a container was being started"):
                await in_engine(pool.warm._start, pool.default_environment)  # the late end of a make
            assert pool_containers(docker_client, store_id) == []
