"""The default sandbox image, checked by running it.

These tests never build a base: CI builds the image first (`.ci/run`), so a missing
image is a missing part, and the build test reuses the base that build left behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from conftest import missing_part

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.version import __version__
from server.hands.docker.base_image import DEBOOTSTRAP_BASE, REGISTRY_BASE, ImageBuildError, build_default_image

SANDBOX_UID = 1000
SESSION_DIRS = ("/workspace", "/mnt/session/outputs", "/mnt/session/uploads")


@pytest.fixture(scope="module")
def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        missing_part("docker", str(exc))
        raise  # missing_part skips or fails; this line only tells type checkers so
    return client


@pytest.fixture(scope="module")
def sandbox_image(docker_client: docker.DockerClient) -> str:
    try:
        docker_client.images.get(DEFAULT_IMAGE)
    except docker.errors.ImageNotFound:
        missing_part("docker", f"no {DEFAULT_IMAGE!r} on the engine; run 'managed-sessions image build'")
        raise
    return DEFAULT_IMAGE


def run_in(client: docker.DockerClient, image: str, script: str) -> str:
    output: bytes = client.containers.run(image, ["sh", "-c", script], remove=True, network_mode="none")
    return output.decode()


@pytest.mark.docker
def test_the_sandbox_runs_as_the_unprivileged_sandbox_user(
    docker_client: docker.DockerClient, sandbox_image: str
) -> None:
    output = run_in(docker_client, sandbox_image, 'id -u; id -g; id -un; echo "$HOME"; pwd')
    assert output.split() == [str(SANDBOX_UID), str(SANDBOX_UID), "sandbox", "/home/sandbox", "/workspace"]


@pytest.mark.docker
def test_the_session_directories_belong_to_the_sandbox_user(
    docker_client: docker.DockerClient, sandbox_image: str
) -> None:
    output = run_in(docker_client, sandbox_image, f"stat -c '%u:%g %n' {' '.join(SESSION_DIRS)}")
    assert output.splitlines() == [f"{SANDBOX_UID}:{SANDBOX_UID} {path}" for path in SESSION_DIRS]


@pytest.mark.docker
def test_the_sandbox_user_can_write_where_sessions_put_files(
    docker_client: docker.DockerClient, sandbox_image: str
) -> None:
    writes = " && ".join(f"touch {path}/probe" for path in (*SESSION_DIRS, "/home/sandbox"))
    assert run_in(docker_client, sandbox_image, f"{writes} && echo ok").strip() == "ok"


@pytest.mark.docker
@pytest.mark.parametrize(
    "command",
    [
        "bash --version",
        "python3 --version",
        "python --version",
        "python3 -m pip --version",
        "python3 -m venv --without-pip /tmp/venv",
        "git --version",
        "rg --version",
        "ps --version",
        "test -s /etc/ssl/certs/ca-certificates.crt",
    ],
)
def test_the_tools_the_agent_uses_are_installed(
    docker_client: docker.DockerClient, sandbox_image: str, command: str
) -> None:
    run_in(docker_client, sandbox_image, command)  # a non-zero exit raises ContainerError


@pytest.mark.docker
def test_the_image_is_labelled_with_the_server_version(docker_client: docker.DockerClient, sandbox_image: str) -> None:
    labels = docker_client.images.get(sandbox_image).labels
    assert labels["io.managed-sessions.image"] == "sandbox"
    assert labels["io.managed-sessions.version"] == __version__, "stale image: run 'managed-sessions image build'"


@pytest.fixture
def scratch_tag(docker_client: docker.DockerClient) -> Iterator[str]:
    tag = "managed-sessions-sandbox:test-build"
    yield tag
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(tag)  # only the tag: the layers are the default image's


@pytest.mark.docker
@pytest.mark.usefixtures("sandbox_image")
def test_building_on_a_local_base_makes_a_working_image_and_prints_nothing_on_stdout(
    docker_client: docker.DockerClient, scratch_tag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local_bases = [name for name in (REGISTRY_BASE, DEBOOTSTRAP_BASE) if docker_client.images.list(name=name)]
    if not local_bases:
        missing_part("docker", f"neither {REGISTRY_BASE!r} nor {DEBOOTSTRAP_BASE!r} is on the engine")

    build_default_image(scratch_tag, "auto")

    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"Successfully tagged {scratch_tag}" in captured.err
    assert run_in(docker_client, scratch_tag, "id -un").strip() == "sandbox"


def test_without_an_engine_the_build_says_how_to_start_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(ImageBuildError, match="start Docker"):
        build_default_image(ServerConfig(data_dir=tmp_path).image, "auto")
