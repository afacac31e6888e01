"""The Docker sandbox for real: tools in a container, its confinement seen from inside, and its lifecycle."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import docker
import docker.errors
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mcp import Client
from processes import run_command
from scenario import call_ok

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.sessions import Session
from server.fronts.mcp.server import build_server
from server.hands.docker.images import BASE_LABEL
from server.hands.docker.sandbox import (
    CA_BUNDLE_IN_CONTAINER,
    LABEL_SESSION,
    LABEL_STORE,
    RESTART_NOTICE,
    SKILL_STORE,
)
from server.hands.toolset import SandboxTools
from server.services.runtime import Runtime, docker_sandboxes, open_runtime
from server.services.sessions import NewSession

pytestmark = [pytest.mark.docker, pytest.mark.anyio]


@pytest.fixture
def sandbox_config(data_dir: Path, docker_client: docker.DockerClient) -> ServerConfig:
    return ServerConfig(data_dir=data_dir, image=DEFAULT_IMAGE)


@dataclass
class Live:
    runtime: Runtime
    session: Session
    tools: SandboxTools

    async def run(self, command: str, **extra: object) -> str:
        result = await self.tools.execute("bash", {"command": command, **extra})
        assert not result.is_error, result.as_text()
        return result.as_text()


@pytest.fixture
async def live(sandbox_config: ServerConfig) -> AsyncIterator[Live]:
    async with open_runtime(sandbox_config) as runtime:
        session = await runtime.sessions.create(NewSession())
        try:
            yield Live(runtime, session, runtime.sandboxes.tools(session.id, session.environment))
        finally:
            await runtime.sessions.delete(session.id)


def containers_of(client: docker.DockerClient, session_id: str) -> list[str]:
    return [c.id for c in client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={session_id}"})]


async def test_nothing_starts_until_the_first_tool_call(live: Live, docker_client: docker.DockerClient) -> None:
    assert containers_of(docker_client, live.session.id) == []
    assert await live.run("echo hello") == "hello"
    assert len(containers_of(docker_client, live.session.id)) == 1


async def test_cd_and_export_persist_between_calls(live: Live) -> None:
    await live.run("mkdir -p /workspace/project && cd /workspace/project && export GREETING=hi")
    assert await live.run('pwd; echo "$GREETING"') == "/workspace/project\nhi"


async def test_a_timed_out_command_is_killed_and_the_shell_still_works(live: Live) -> None:
    await live.run("cd /tmp")
    with anyio.fail_after(30):
        result = await live.tools.execute("bash", {"command": "sleep 60", "timeout_ms": 1000})
    assert result.is_error
    assert "timed out" in result.as_text()
    assert await live.run("pwd") == "/tmp"


async def test_a_failing_command_is_an_error_result_with_its_output(live: Live) -> None:
    result = await live.tools.execute("bash", {"command": "echo oops >&2; exit 3"})
    assert result.is_error
    assert "oops" in result.as_text()
    assert "exit code 3" in result.as_text()


async def test_confinement_seen_from_inside(live: Live) -> None:
    facts = await live.run(
        "id -u; grep CapEff /proc/self/status; ls /sys/class/net; "
        "test -e /var/run/docker.sock && echo socket || echo no-socket; "
        "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max; "
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
        "grep -c NoNewPrivs:.1 /proc/self/status"
    )
    uid, capeff, *rest = facts.splitlines()
    assert uid == "1000"
    assert capeff.split()[-1] == "0000000000000000"
    assert rest[0] == "lo"  # network none: loopback only
    assert rest[1] == "no-socket"
    assert rest[2] == "512"
    assert int(rest[3]) == 2048 * 1024 * 1024
    assert rest[4] == "1"


async def test_no_host_paths_are_mounted(live: Live) -> None:
    mounts = await live.run("cat /proc/mounts")
    targets = {line.split()[1] for line in mounts.splitlines()}
    # Docker's own: its files for name resolution, and its init (pid 1 reaps zombies), read-only; and the server's
    # skill store, read-only (test_container_posture.py checks its mode).
    allowed_binds = {
        "/workspace",
        "/mnt/session/outputs",
        SKILL_STORE,
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
        "/sbin/docker-init",
        "/usr/sbin/docker-init",
    }
    for line in mounts.splitlines():
        device, target = line.split()[:2]
        if device.startswith("/dev/") and target not in allowed_binds:
            pytest.fail(f"unexpected mount from the host: {line}")
    assert {"/workspace", "/mnt/session/outputs"} <= targets


async def test_a_killed_container_is_replaced_and_the_files_are_still_there(
    live: Live, docker_client: docker.DockerClient
) -> None:
    await live.run("echo kept > /workspace/a.txt && echo report > /mnt/session/outputs/r.md")
    [first] = containers_of(docker_client, live.session.id)
    docker_client.containers.get(first).kill()
    assert await live.run("cat /workspace/a.txt /mnt/session/outputs/r.md") == RESTART_NOTICE + "\nkept\nreport"
    [second] = containers_of(docker_client, live.session.id)
    assert second != first


async def test_a_restarted_server_reattaches_to_the_running_container(
    sandbox_config: ServerConfig, docker_client: docker.DockerClient
) -> None:
    async with open_runtime(sandbox_config) as runtime:
        session = await runtime.sessions.create(NewSession())
        store_id = runtime.store.store_id
    # A server that ends without a clean shutdown (a clean one stops the containers of sessions not running).
    async with anyio.create_task_group() as task_group:
        ended = docker_sandboxes(sandbox_config, store_id, task_group)
        tools = ended.tools(session.id, session.environment)
        assert not (await tools.execute("bash", {"command": "echo $$ > /tmp/first-shell"})).is_error
        [container] = containers_of(docker_client, session.id)
        await ended.aclose()
        task_group.cancel_scope.cancel()
    async with open_runtime(sandbox_config) as runtime:  # a new server on the same store
        tools = runtime.sandboxes.tools(session.id, session.environment)
        result = await tools.execute("bash", {"command": "cat /tmp/first-shell"})
        assert not result.is_error
        assert containers_of(docker_client, session.id) == [container]
        await runtime.sessions.delete(session.id)
    assert containers_of(docker_client, session.id) == []


async def test_leftovers_of_deleted_and_archived_sessions_are_reaped(
    sandbox_config: ServerConfig, docker_client: docker.DockerClient
) -> None:
    async with open_runtime(sandbox_config) as runtime:
        kept = await runtime.sessions.create(NewSession())
        gone = await runtime.sessions.create(NewSession())
        for session in (kept, gone):
            assert not (
                await runtime.sandboxes.tools(session.id, session.environment).execute("bash", {"command": "true"})
            ).is_error
        store_id = runtime.store.store_id
        await anyio.to_thread.run_sync(runtime.store.delete_session, gone.id)  # behind the server's back
        swept = await runtime.sandboxes.reap(runtime.store.session_ids())
        assert len(swept.containers) == 1
        assert len(swept.volumes) == 2
        assert containers_of(docker_client, gone.id) == []
        assert docker_client.volumes.list(filters={"label": f"{LABEL_SESSION}={gone.id}"}) == []
        assert len(containers_of(docker_client, kept.id)) == 1
        assert docker_client.volumes.list(filters={"label": f"{LABEL_STORE}={store_id}"})
        await runtime.sessions.delete(kept.id)


async def test_archive_removes_the_container_and_keeps_the_outputs(
    sandbox_config: ServerConfig, docker_client: docker.DockerClient
) -> None:
    async with open_runtime(sandbox_config) as runtime:
        session = await runtime.sessions.create(NewSession())
        tools = runtime.sandboxes.tools(session.id, session.environment)
        assert not (await tools.execute("write", {"file_path": "/mnt/session/outputs/n.txt", "content": "x"})).is_error
        await runtime.sessions.archive(session.id)
        assert containers_of(docker_client, session.id) == []
        listing = await runtime.sessions.output_files(session.id)
        assert [f.path for f in listing.files] == ["n.txt"]
        assert containers_of(docker_client, session.id) == []  # the reader container went again
        await runtime.sessions.delete(session.id)
        assert docker_client.volumes.list(filters={"label": f"{LABEL_SESSION}={session.id}"}) == []


def self_signed_ca(folder: Path) -> Path:
    """A PEM file holding one self-signed CA certificate (what a TLS-re-signing proxy's CA looks like)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "managed-sessions test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = folder / "extra-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def posture_of_container(attrs: dict[str, Any], image_labels: dict[str, str]) -> dict[str, Any]:
    """The confinement a container really has, from `docker inspect`, in the shape `get_session` shows."""
    config, host = attrs["Config"], attrs["HostConfig"]
    mounts = attrs["Mounts"]
    disk = (host.get("StorageOpt") or {}).get("size")
    return {
        "image": image_labels[BASE_LABEL],  # what the session's image was derived from
        "user": config["User"],
        "network": host["NetworkMode"],
        "capabilities": sorted(host.get("CapAdd") or []) if "ALL" in (host.get("CapDrop") or []) else ["(default)"],
        "no_new_privileges": any(opt.split(":")[0].split("=")[0] == "no-new-privileges" for opt in host["SecurityOpt"]),
        "memory_mb": host["Memory"] // (1024 * 1024),
        "cpus": host["NanoCpus"] / 1e9,
        "pids_limit": host["PidsLimit"],
        "disk_mb": int(disk.rstrip("mM")) if disk else None,
        "docker_socket": any("docker.sock" in f"{m.get('Source')} {m['Destination']}" for m in mounts),
        "extra_ca_bundle": any(m["Destination"] == CA_BUNDLE_IN_CONTAINER and not m["RW"] for m in mounts),
    }


POSTURE_CASES = {
    "default": ({}, False),
    "limits-network-and-ca": (
        {
            "image": DEFAULT_IMAGE,
            "networking": {"type": "unrestricted"},
            "resources": {"cpus": 0.5, "memory_mb": 768},
        },
        True,
    ),
}


@pytest.mark.parametrize("case", list(POSTURE_CASES))
async def test_get_session_shows_the_sandbox_posture(
    sandbox_config: ServerConfig, docker_client: docker.DockerClient, tmp_path: Path, case: str
) -> None:
    environment, with_ca = POSTURE_CASES[case]
    extra_ca = self_signed_ca(tmp_path) if with_ca else None
    config = dataclasses.replace(sandbox_config, extra_ca_bundle=extra_ca)
    async with open_runtime(config) as runtime, Client(build_server(runtime)) as client:
        arguments: dict[str, Any] = {}
        if environment:
            made = await call_ok(client, "create_environment", {"name": "posture", **environment})
            arguments["environment_id"] = made["id"]
        session = await call_ok(client, "create_session", arguments)
        sid = session["id"]
        assert session["sandbox"] is not None
        made_for = await runtime.sessions.get(sid)  # the first tool call makes the container
        await runtime.sandboxes.tools(sid, made_for.environment).execute("bash", {"command": "true"})
        shown = (await call_ok(client, "get_session", {"session_id": sid}))["sandbox"]
        [container] = docker_client.containers.list(filters={"label": f"{LABEL_SESSION}={sid}"})
        attrs = docker_client.api.inspect_container(container.id)
        labels = docker_client.images.get(attrs["Config"]["Image"]).labels or {}
        real = posture_of_container(attrs, labels)
        mounts = {m["Destination"]: m for m in attrs["Mounts"]}
        await call_ok(client, "delete_session", {"session_id": sid})

    egress = shown.pop("egress")  # what the container's network lets out: the egress tests check it from inside
    assert egress["mode"] == (environment.get("networking") or {"type": "none"})["type"]
    assert shown == real
    # Only the session's two volumes, the skill store (read-only) and the CA bundle (read-only, when one is
    # configured) are mounted.
    expected = {"/workspace", "/mnt/session/outputs", SKILL_STORE} | ({CA_BUNDLE_IN_CONTAINER} if with_ca else set())
    assert set(mounts) == expected
    assert mounts[SKILL_STORE]["RW"] is False
    assert {mounts[d]["Type"] for d in ("/workspace", "/mnt/session/outputs")} == {"volume"}
    if with_ca:
        assert (mounts[CA_BUNDLE_IN_CONTAINER]["Source"], mounts[CA_BUNDLE_IN_CONTAINER]["RW"]) == (
            str(extra_ca),
            False,
        )


async def test_doctor_reports_leftovers_and_the_next_start_reaps_them(
    sandbox_config: ServerConfig, docker_client: docker.DockerClient, subprocess_env: dict[str, str]
) -> None:
    async with open_runtime(sandbox_config) as runtime:
        session = await runtime.sessions.create(NewSession())
        tools = runtime.sandboxes.tools(session.id, session.environment)
        assert not (await tools.execute("bash", {"command": "true"})).is_error
        await anyio.to_thread.run_sync(runtime.store.delete_session, session.id)  # behind the server's back
    doctor = await anyio.to_thread.run_sync(
        run_command, ["doctor"], {**subprocess_env, "MANAGED_SESSIONS_IMAGE": DEFAULT_IMAGE}
    )
    assert "[warn] sandbox leftovers" in doctor.stdout
    assert "1 container(s), 2 volume(s) no session needs" in doctor.stdout
    async with open_runtime(sandbox_config) as runtime:  # a server start reaps in the background
        with anyio.fail_after(30):
            await runtime.sandboxes.reaped.wait()
    assert containers_of(docker_client, session.id) == []
    assert docker_client.volumes.list(filters={"label": f"{LABEL_SESSION}={session.id}"}) == []


async def test_channels_stay_sound_while_many_sessions_come_and_go(sandbox_config: ServerConfig) -> None:
    """Regression: the SDK's socket wrapper, when collected, used to close descriptors live channels had reused."""
    async with open_runtime(sandbox_config) as runtime:
        live_session = await runtime.sessions.create(NewSession())
        live_tools = runtime.sandboxes.tools(live_session.id, live_session.environment)
        for round_index in range(25):  # the old bug struck by the 8th cycle, as the collector ran
            session = await runtime.sessions.create(NewSession())
            tools = runtime.sandboxes.tools(session.id, session.environment)
            with anyio.fail_after(20):
                result = await tools.execute("bash", {"command": f"echo {round_index}"})
            assert result.as_text() == str(round_index)
            await runtime.sessions.delete(session.id)
            with anyio.fail_after(20):
                assert (await live_tools.execute("bash", {"command": "echo alive"})).as_text() == "alive"
        await runtime.sessions.delete(live_session.id)
