"""Environment images, built for real on the engine: what a derived image holds, its cache, and how builds fail.

Each test gives the preparer its own stand-in helper (a nonce in its bytes), so its cache keys are
new: a build left over from an earlier run is never mistaken for a cache hit. Every image a test
makes is removed at teardown, which also drops the layers under it.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import docker
import docker.errors
import pytest

from server.core.config import DEFAULT_IMAGE
from server.core.environments import EnvironmentSpec
from server.core.errors import ImageMissingError
from server.hands.docker.images import BASE_LABEL, HELPER_PATH, SANDBOX_UID, ImagePreparer, SandboxImageError

pytestmark = pytest.mark.docker

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
"""What CI sets as MANAGED_SESSIONS_EXTRA_CA_BUNDLE: registries here are behind a TLS-re-signing proxy."""
MISSING_IMAGE = "localhost:1/managed-sessions-missing:never"
"""Pulling from a closed loopback port fails at once, and sends nothing off this machine."""


@pytest.fixture
def made_images(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Tags the test made; removed afterwards."""
    tags: list[str] = []
    yield tags
    for tag in tags:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag, force=True)


@pytest.fixture
def helper() -> bytes:
    return f"# stand-in for the sandbox helper, test run {uuid.uuid4().hex}\n".encode()


@pytest.fixture
def preparer(docker_client: docker.DockerClient, helper: bytes) -> ImagePreparer:
    return ImagePreparer(docker_client, DEFAULT_IMAGE, None, helper_source=helper)


def run_in(
    client: docker.DockerClient, image: str, script: str, volumes: dict[str, dict[str, str]] | None = None
) -> str:
    output = client.containers.run(image, ["sh", "-c", script], remove=True, network_mode="none", volumes=volumes)
    return output.decode()


def make_base(client: docker.DockerClient, made_images: list[str], *instructions: str) -> str:
    """A base image made locally from the default one (no registry needed)."""
    tag = f"managed-sessions-test-base:{uuid.uuid4().hex[:12]}"
    dockerfile = "\n".join([f"FROM {DEFAULT_IMAGE}", "USER root", *instructions]) + "\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True, pull=False)
    made_images.append(tag)
    return tag


def test_a_default_environment_runs_as_uid_1000_with_the_helper_and_owned_session_dirs(
    docker_client: docker.DockerClient, preparer: ImagePreparer, helper: bytes, made_images: list[str]
) -> None:
    progress: list[str] = []
    tag = preparer.prepare(EnvironmentSpec(), progress.append)
    made_images.append(tag)

    assert tag.startswith("managed-sessions-env:")
    assert any(line.startswith("Step ") for line in progress)
    script = (
        f"id -u; id -g; pwd; stat -c '%u:%g' /workspace /mnt/session/outputs /mnt/session/uploads; cat {HELPER_PATH}"
    )
    output = run_in(docker_client, tag, script)
    ids = [str(SANDBOX_UID)] * 2
    assert output.splitlines() == [*ids, "/workspace", *[f"{SANDBOX_UID}:{SANDBOX_UID}"] * 3, helper.decode().strip()]
    labels = docker_client.images.get(tag).labels
    assert labels["io.managed-sessions.image"] == "env"
    assert tag.endswith(labels["io.managed-sessions.env-key"][:16])


def test_a_fresh_named_volume_over_the_workspace_belongs_to_the_sandbox_user(
    docker_client: docker.DockerClient, preparer: ImagePreparer, made_images: list[str]
) -> None:
    tag = preparer.prepare(EnvironmentSpec())
    made_images.append(tag)
    volume = docker_client.volumes.create(f"managed-sessions-test-{uuid.uuid4().hex[:12]}")
    try:
        output = run_in(docker_client, tag, "stat -c %u:%g /workspace", volumes={volume.name: {"bind": "/workspace"}})
    finally:
        volume.remove(force=True)
    assert output.strip() == f"{SANDBOX_UID}:{SANDBOX_UID}"


def test_preparing_an_equal_definition_again_reuses_the_image_without_building(
    docker_client: docker.DockerClient, helper: bytes, made_images: list[str]
) -> None:
    first = ImagePreparer(docker_client, DEFAULT_IMAGE, None, helper_source=helper).prepare(EnvironmentSpec())
    made_images.append(first)
    created = docker_client.images.get(first).attrs["Created"]

    progress: list[str] = []
    restarted = ImagePreparer(docker_client, DEFAULT_IMAGE, None, helper_source=helper)  # as after a restart
    second = restarted.prepare(EnvironmentSpec(image=DEFAULT_IMAGE), progress.append)

    assert second == first
    assert progress == []
    assert docker_client.images.get(second).attrs["Created"] == created


def test_concurrent_prepares_of_one_definition_build_it_once(preparer: ImagePreparer, made_images: list[str]) -> None:
    progress: list[list[str]] = [[] for _ in range(3)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        tags = list(pool.map(lambda lines: preparer.prepare(EnvironmentSpec(), lines.append), progress))
    made_images.extend(set(tags))

    assert len(set(tags)) == 1
    assert sorted(bool(lines) for lines in progress) == [False, False, True]


def test_pip_packages_are_installed_once_then_the_image_is_reused(
    docker_client: docker.DockerClient, helper: bytes, made_images: list[str]
) -> None:
    preparer = ImagePreparer(docker_client, DEFAULT_IMAGE, HOST_CA_BUNDLE, helper_source=helper)
    spec = EnvironmentSpec.model_validate({"packages": {"pip": ["six==1.16.0"]}})
    progress: list[str] = []
    tag = preparer.prepare(spec, progress.append)
    made_images.append(tag)

    assert any("pip install" in line and "six==1.16.0" in line for line in progress)
    assert run_in(docker_client, tag, "python3 -c 'import six; print(six.__version__)'").strip() == "1.16.0"
    trusted = run_in(docker_client, tag, 'test -s "$SSL_CERT_FILE" && echo "$PIP_CERT $NODE_EXTRA_CA_CERTS"')
    assert trusted.split() == ["/opt/managed-sessions/ca-bundle.crt"] * 2

    again: list[str] = []
    equal_spec = EnvironmentSpec.model_validate(spec.model_dump())
    assert preparer.prepare(equal_spec, again.append) == tag
    assert again == []


def test_a_pip_package_that_does_not_exist_fails_naming_pip_and_the_package(
    docker_client: docker.DockerClient, helper: bytes
) -> None:
    preparer = ImagePreparer(docker_client, DEFAULT_IMAGE, HOST_CA_BUNDLE, helper_source=helper)
    package = f"managed-sessions-no-such-package-{uuid.uuid4().hex[:8]}"

    with pytest.raises(SandboxImageError) as caught:
        preparer.prepare(EnvironmentSpec.model_validate({"packages": {"pip": [package]}}))

    message = str(caught.value)
    assert "pip install" in message
    assert package in message
    assert "No matching distribution" in message  # pip's own words, from the step's output


def test_a_base_without_python3_is_refused_with_the_helper_requirement(
    docker_client: docker.DockerClient, preparer: ImagePreparer, made_images: list[str]
) -> None:
    base = make_base(docker_client, made_images, "RUN rm -f /usr/bin/python3* /usr/bin/python")

    with pytest.raises(SandboxImageError) as caught:
        preparer.prepare(EnvironmentSpec(image=base))

    assert str(caught.value).startswith(f"image {base!r} has no python3 >= 3.8, which the sandbox helper needs")


def test_a_base_without_a_uid_1000_user_gets_one_with_a_home(
    docker_client: docker.DockerClient, preparer: ImagePreparer, made_images: list[str]
) -> None:
    base = make_base(docker_client, made_images, "RUN userdel --remove sandbox")
    tag = preparer.prepare(EnvironmentSpec(image=base))
    made_images.append(tag)

    output = run_in(docker_client, tag, 'id -u; id -un; echo "$HOME"; stat -c %u:%g "$HOME" /workspace')
    owner = f"{SANDBOX_UID}:{SANDBOX_UID}"
    assert output.splitlines() == [str(SANDBOX_UID), "sandbox", "/home/sandbox", owner, owner]


def test_an_image_neither_present_nor_pullable_fails_at_the_pull_with_how_to_get_it(
    docker_client: docker.DockerClient, preparer: ImagePreparer
) -> None:
    progress: list[str] = []

    with pytest.raises(SandboxImageError) as caught:
        preparer.prepare(EnvironmentSpec(image=MISSING_IMAGE), progress.append)

    message = str(caught.value)
    # One pull was tried and its own failure is quoted; no build step ran and no image was made.
    assert f"image {MISSING_IMAGE!r} is not on the Docker engine and pulling it failed (" in message
    assert not any(line.startswith("Step ") for line in progress)
    assert docker_client.images.list(filters={"label": f"{BASE_LABEL}={MISSING_IMAGE}"}) == []
    assert "docker pull" in message
    assert "docker load" in message


def test_a_missing_default_image_is_named_for_the_agent_loop_to_build_and_points_at_the_build_command(
    docker_client: docker.DockerClient, helper: bytes
) -> None:
    default = f"managed-sessions-sandbox:test-missing-{uuid.uuid4().hex[:8]}"
    preparer = ImagePreparer(docker_client, default, None, helper_source=helper)

    with pytest.raises(ImageMissingError, match="managed-sessions image build") as caught:
        preparer.prepare(EnvironmentSpec())
    assert caught.value.image == default


def test_a_missing_default_image_from_elsewhere_is_explained_not_built(
    docker_client: docker.DockerClient, helper: bytes
) -> None:
    preparer = ImagePreparer(docker_client, MISSING_IMAGE, None, helper_source=helper)

    with pytest.raises(SandboxImageError) as caught:
        preparer.prepare(EnvironmentSpec())

    assert not isinstance(caught.value, ImageMissingError)  # our image is never built under someone else's name
    assert "pulling it failed" in str(caught.value)


def test_a_missing_sandbox_tag_that_is_not_the_default_is_never_pulled_and_names_the_build_command(
    docker_client: docker.DockerClient, preparer: ImagePreparer
) -> None:
    other_tag = f"managed-sessions-sandbox:test-missing-{uuid.uuid4().hex[:8]}"

    with pytest.raises(SandboxImageError) as caught:
        preparer.prepare(EnvironmentSpec(image=other_tag))

    assert not isinstance(caught.value, ImageMissingError)  # only the server's default image is built for a session
    assert f"run 'managed-sessions image build --tag {other_tag}'" in str(caught.value)
    assert "pulling it failed" not in str(caught.value)  # that repository is made locally, never published


def test_an_unreadable_ca_bundle_names_the_setting_to_fix(
    docker_client: docker.DockerClient, helper: bytes, tmp_path: Path
) -> None:
    preparer = ImagePreparer(docker_client, DEFAULT_IMAGE, tmp_path / "absent.pem", helper_source=helper)

    with pytest.raises(SandboxImageError, match="MANAGED_SESSIONS_EXTRA_CA_BUNDLE"):
        preparer.prepare(EnvironmentSpec())


def test_the_helper_comes_from_the_package_by_default(
    docker_client: docker.DockerClient, made_images: list[str], tmp_path: Path
) -> None:
    packaged = resources.files("server.hands.helper").joinpath("helper.py")
    if not packaged.is_file():
        pytest.skip("server/hands/helper/helper.py is not written yet")
    # A CA bundle of its own keeps this image apart from the cached image real sessions use.
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(f"# {uuid.uuid4().hex}\n".encode() + HOST_CA_BUNDLE.read_bytes())
    expected = packaged.read_bytes()
    tag = ImagePreparer(docker_client, DEFAULT_IMAGE, bundle).prepare(EnvironmentSpec())
    made_images.append(tag)

    output: bytes = docker_client.containers.run(tag, ["cat", HELPER_PATH], remove=True, network_mode="none")
    assert output == expected
