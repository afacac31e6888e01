"""Environments in real sandboxes: packages built once and reused, network posture, env variables."""

from __future__ import annotations

from pathlib import Path

import anyio
import docker
import docker.errors
import pytest

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.environments import NoNetwork, Packages, Resources, UnrestrictedNetwork
from server.core.errors import SandboxUnavailableError, ServerError
from server.hands.docker.sandbox import LABEL_SESSION
from server.services.definitions import EnvironmentChanges
from server.services.runtime import Runtime, open_runtime
from server.services.sessions import NewSession

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture
def ca_config(data_dir: Path, docker_client: docker.DockerClient) -> ServerConfig:
    """Registries here sit behind a TLS-re-signing proxy: trust its CA in builds and sandboxes."""
    return ServerConfig(data_dir=data_dir, image=DEFAULT_IMAGE, extra_ca_bundle=HOST_CA_BUNDLE)


async def first_call(runtime: Runtime, environment_id: str | None, command: str) -> tuple[str, str, bool]:
    """Creates a session and runs one command; returns (session id, output, is_error)."""
    session = await runtime.sessions.create(NewSession(environment_id=environment_id))
    result = await runtime.sandboxes.tools(session.id, session.environment).execute("bash", {"command": command})
    return session.id, result.as_text(), result.is_error


def image_of(client: docker.DockerClient, session_id: str) -> str:
    [container] = client.containers.list(filters={"label": f"{LABEL_SESSION}={session_id}"})
    return str(container.image.id)


async def test_pip_packages_are_installed_once_and_reused_by_the_next_session(
    ca_config: ServerConfig, docker_client: docker.DockerClient
) -> None:
    marker = f"six=={'1.16.0'}"
    async with open_runtime(ca_config) as runtime:
        env = await runtime.definitions.create_environment(
            EnvironmentChanges(name="with-six", packages=Packages(pip=[marker]), env={"GREETING": "hello"})
        )
        first, output, failed = await first_call(runtime, env.id, 'python3 -c "import six; print(six.__version__)"')
        assert (output, failed) == ("1.16.0", False)
        image = docker_client.images.get(image_of(docker_client, first))
        second, output, failed = await first_call(runtime, env.id, 'python3 -c "import six" && echo "$GREETING"')
        assert (output, failed) == ("hello", False)
        reused = docker_client.images.get(image_of(docker_client, second))
        assert reused.id == image.id  # the same built image: nothing was installed again
        assert reused.attrs["Created"] == image.attrs["Created"]
        for session_id in (first, second):
            await runtime.sessions.delete(session_id)


async def test_a_failed_install_is_a_clear_error_not_a_hang(ca_config: ServerConfig) -> None:
    async with open_runtime(ca_config) as runtime:
        env = await runtime.definitions.create_environment(
            EnvironmentChanges(name="broken", packages=Packages(pip=["managed-sessions-no-such-package==9.9.9"]))
        )
        session = await runtime.sessions.create(NewSession(environment_id=env.id))
        tools = runtime.sandboxes.tools(session.id, session.environment)
        with anyio.fail_after(300), pytest.raises(ServerError) as raised:
            await tools.execute("bash", {"command": "true"})
        assert "pip" in str(raised.value)
        assert "managed-sessions-no-such-package" in str(raised.value)
        await runtime.sessions.delete(session.id)


async def test_unrestricted_networking_reaches_a_registry_and_none_does_not(ca_config: ServerConfig) -> None:
    fetch = "python3 -m pip download --no-deps --quiet -d /tmp/dl six==1.16.0 && ls /tmp/dl"
    async with open_runtime(ca_config) as runtime:
        open_env = await runtime.definitions.create_environment(
            EnvironmentChanges(name="open", networking=UnrestrictedNetwork(type="unrestricted"))
        )
        closed_env = await runtime.definitions.create_environment(
            EnvironmentChanges(name="closed", networking=NoNetwork())
        )
        opened, output, failed = await first_call(runtime, open_env.id, fetch + "; ls /sys/class/net")
        assert not failed, output
        assert "six-1.16.0" in output
        assert "eth0" in output
        closed, output, failed = await first_call(runtime, closed_env.id, fetch + " 2>&1 | tail -1")
        assert "six-1.16.0" not in output
        for session_id in (opened, closed):
            await runtime.sessions.delete(session_id)


async def test_a_disk_limit_the_storage_driver_cannot_enforce_is_refused_with_the_reason(
    ca_config: ServerConfig, docker_client: docker.DockerClient
) -> None:
    status = dict(docker_client.info().get("DriverStatus") or [])
    if status.get("Backing Filesystem") == "xfs":
        pytest.skip("overlay2 on xfs can enforce disk limits; this checks the refusal elsewhere")
    async with open_runtime(ca_config) as runtime:
        env = await runtime.definitions.create_environment(
            EnvironmentChanges(name="small-disk", resources=Resources(disk_mb=512))
        )
        session = await runtime.sessions.create(NewSession(environment_id=env.id))
        tools = runtime.sandboxes.tools(session.id, session.environment)
        with pytest.raises(SandboxUnavailableError) as raised:
            await tools.execute("bash", {"command": "true"})
        assert "disk_mb=512" in str(raised.value)
        assert "Remove disk_mb" in str(raised.value)
        await runtime.sessions.delete(session.id)
