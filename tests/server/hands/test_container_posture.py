"""The sandbox's configuration as the Docker engine holds it, checked against the README's security model.

- "The container's environment is built from the environment definition; nothing of the server's own
  environment reaches it."
- "memory, CPU and pids limits" with `resources.cpus` (default 1.0).
- "Container output is not logged by Docker (`log_config: none`)."
- "no host paths (only the session's two volumes, and a CA bundle read-only when configured)"
  (`MANAGED_SESSIONS_EXTRA_CA_BUNDLE`).

Everything is read from `docker inspect` of the session's real container and from inside it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from server.core.config import ServerConfig
from server.core.environments import Resources
from server.hands.docker.sandbox import LABEL_SESSION, SKILL_STORE
from server.hands.toolset import SandboxTools
from server.services.definitions import EnvironmentChanges
from server.services.runtime import Runtime, open_runtime
from server.services.sessions import NewSession

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
"""What CI sets as MANAGED_SESSIONS_EXTRA_CA_BUNDLE (registries here sit behind a TLS-re-signing proxy); the same
bundle as the other image tests use, so the derived image is shared with them."""
CA_IN_CONTAINER = "/etc/ssl/certs/ca-certificates.crt"
SERVER_ONLY_NAME = "MS_POSTURE_SERVER_ONLY_7E2B"
SERVER_ONLY_VALUE = "server-environment-value-5a91c3"


@dataclass
class Sandbox:
    runtime: Runtime
    session_id: str
    tools: SandboxTools
    container: Any  # docker.models.containers.Container, inspected after the first call

    async def run(self, command: str) -> str:
        result = await self.tools.execute("bash", {"command": command})
        assert not result.is_error, result.as_text()
        return result.as_text()


@pytest.fixture
async def sandbox(
    data_dir: Path, docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Sandbox]:
    """A session whose environment asks for 0.5 CPUs and one variable, on a server that has a variable of its own
    in its environment and an extra CA bundle configured (as ServerConfig.from_env reads them)."""
    monkeypatch.setenv(SERVER_ONLY_NAME, SERVER_ONLY_VALUE)
    config = ServerConfig.from_env(
        {
            "MANAGED_SESSIONS_DATA_DIR": str(data_dir),
            "MANAGED_SESSIONS_EXTRA_CA_BUNDLE": str(HOST_CA_BUNDLE),
        }
    )
    assert config.extra_ca_bundle == HOST_CA_BUNDLE
    async with open_runtime(config) as runtime:
        environment = await runtime.definitions.create_environment(
            EnvironmentChanges(name="posture", resources=Resources(cpus=0.5), env={"GREETING": "from-definition"})
        )
        session = await runtime.sessions.create(NewSession(environment_id=environment.id))
        tools = runtime.sandboxes.tools(session.id, session.environment)
        try:
            assert not (await tools.execute("bash", {"command": "true"})).is_error
            [container] = docker_client.containers.list(filters={"label": f"{LABEL_SESSION}={session.id}"})
            yield Sandbox(runtime, session.id, tools, container)
        finally:
            await runtime.sessions.delete(session.id)


def variables(entries: list[str]) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in entries)


async def test_nothing_of_the_servers_environment_reaches_the_container(
    sandbox: Sandbox, docker_client: docker.DockerClient
) -> None:
    """The container's variables are the image's, the sandbox's own (HOME, LANG, TERM, the CA variables) and the
    definition's; a variable the server has is in neither the container's configuration nor its shell."""
    configured = variables(sandbox.container.attrs["Config"]["Env"])
    image = variables(docker_client.images.get(sandbox.container.attrs["Image"]).attrs["Config"]["Env"] or [])
    ca_variables = {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "NODE_EXTRA_CA_CERTS", "CURL_CA_BUNDLE"}
    assert set(configured) == set(image) | {"HOME", "LANG", "TERM", "GREETING"} | ca_variables
    assert configured["GREETING"] == "from-definition"
    assert SERVER_ONLY_VALUE not in str(sandbox.container.attrs)

    shell = await sandbox.run("env")
    assert "GREETING=from-definition" in shell.splitlines()
    assert SERVER_ONLY_NAME not in shell
    assert SERVER_ONLY_VALUE not in shell


async def test_the_cpu_limit_is_the_environments_cpus(sandbox: Sandbox) -> None:
    host_config = sandbox.container.attrs["HostConfig"]
    assert host_config["NanoCpus"] == 500_000_000  # resources.cpus = 0.5
    session = await sandbox.runtime.sessions.get(sandbox.session_id)
    assert session.sandbox is not None
    assert session.sandbox.cpus == 0.5  # and get_session shows the same posture


async def test_docker_does_not_log_the_containers_output(sandbox: Sandbox, docker_client: docker.DockerClient) -> None:
    assert sandbox.container.attrs["HostConfig"]["LogConfig"]["Type"] == "none"
    await sandbox.run("echo a line Docker would otherwise keep")
    with pytest.raises(docker.errors.APIError):  # "configured logging driver does not support reading"
        docker_client.api.logs(sandbox.container.id)


async def test_the_extra_ca_bundle_is_mounted_read_only(sandbox: Sandbox) -> None:
    """The bundle is the host's file, bound read-only: even the file's owner (root, reached here with a test-only
    `docker exec -u 0`) cannot change it, and the sandbox user's write fails on the read-only mount."""
    [mount] = [m for m in sandbox.container.attrs["Mounts"] if m["Type"] == "bind" and m["Destination"] != SKILL_STORE]
    assert (mount["Source"], mount["Destination"], mount["RW"]) == (str(HOST_CA_BUNDLE), CA_IN_CONTAINER, False)

    inside = await sandbox.run(f"sha256sum {CA_IN_CONTAINER}; grep ' {CA_IN_CONTAINER} ' /proc/mounts")
    digest, mounted = inside.splitlines()
    assert digest.split()[0] == hashlib.sha256(HOST_CA_BUNDLE.read_bytes()).hexdigest()
    assert mounted.split()[3].split(",")[0] == "ro"

    attempt = await sandbox.tools.execute("bash", {"command": f"echo changed > {CA_IN_CONTAINER}"})
    assert attempt.is_error
    assert "Read-only file system" in attempt.as_text()
    as_root = sandbox.container.exec_run(["sh", "-c", f"echo changed > {CA_IN_CONTAINER}"], user="0")
    assert as_root.exit_code != 0
    assert b"Read-only file system" in as_root.output
    assert hashlib.sha256(HOST_CA_BUNDLE.read_bytes()).hexdigest() == digest.split()[0]


async def test_the_skill_store_is_the_only_other_host_path_and_it_is_read_only(sandbox: Sandbox) -> None:
    [mount] = [m for m in sandbox.container.attrs["Mounts"] if m["Destination"] == SKILL_STORE]
    assert (mount["Type"], mount["RW"]) == ("bind", False)
    attempt = await sandbox.tools.execute("bash", {"command": f"touch {SKILL_STORE}/probe"})
    assert "Read-only file system" in attempt.as_text()
