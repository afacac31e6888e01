"""apt and npm packages in an environment, and the README's order: "apt, then npm, then pip".

One real build through the TLS-re-signing proxy (the host's CA bundle is the extra CA bundle, as CI sets it) with
one small package per manager: apt `jq`, npm `is-number`, pip `six`. The base image has no npm, so the npm step
installs Node.js and npm with apt-get first, as the preparer does for Debian-based images.

The order is read twice: from the build the preparer ran (the builder's numbered steps) and from the image it made
(its layer history, and dpkg's log, where `jq` is installed before npm's own `nodejs`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from server.core.config import DEFAULT_IMAGE
from server.core.environments import EnvironmentSpec
from server.hands.docker.images import ImagePreparer

pytestmark = pytest.mark.docker

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
"""What CI sets as MANAGED_SESSIONS_EXTRA_CA_BUNDLE: registries here are behind a TLS-re-signing proxy."""
PACKAGES = {"apt": ["jq"], "npm": ["is-number@7.0.0"], "pip": ["six==1.16.0"]}
INSTALLERS = ("apt-get install -y --no-install-recommends jq", "npm install -g", "pip install")
"""What each manager's step runs, in the README's order."""


@pytest.fixture(scope="module")
def built(docker_client: docker.DockerClient) -> Iterator[tuple[str, list[str]]]:
    """The image for one environment with all three kinds of packages, and the build's output; removed after.

    Built once for the module (it takes about a minute); a stand-in helper with a nonce makes the cache key new,
    so this really builds."""
    helper = f"# stand-in for the sandbox helper, test run {uuid.uuid4().hex}\n".encode()
    preparer = ImagePreparer(docker_client, DEFAULT_IMAGE, HOST_CA_BUNDLE, helper_source=helper)
    progress: list[str] = []
    tag = preparer.prepare(EnvironmentSpec.model_validate({"packages": PACKAGES}), progress.append)
    yield tag, progress
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(tag, force=True)


def run_in(client: docker.DockerClient, image: str, script: str) -> str:
    output: bytes = client.containers.run(image, ["sh", "-c", script], remove=True, network_mode="none")
    return output.decode()


def first_index(lines: list[str], needle: str) -> int:
    found = [i for i, line in enumerate(lines) if needle in line]
    assert found, f"{needle!r} is in no line"
    return found[0]


def test_apt_and_npm_packages_are_installed_and_usable_as_the_sandbox_user(
    docker_client: docker.DockerClient, built: tuple[str, list[str]]
) -> None:
    tag, _ = built
    output = run_in(
        docker_client,
        tag,
        "id -u; echo '{\"a\": 41}' | jq '.a + 1'; "
        'node -e "console.log(require(process.argv[1])(7))" "$(npm root -g)/is-number"; '
        "npm ls -g --depth=0 --parseable --long | grep -o 'is-number@.*'; "
        "python3 -c 'import six; print(six.__version__)'",
    )
    assert output.splitlines() == ["1000", "42", "true", "is-number@7.0.0", "1.16.0"]


def test_packages_are_installed_apt_then_npm_then_pip(
    docker_client: docker.DockerClient, built: tuple[str, list[str]]
) -> None:
    tag, progress = built
    steps = [line for line in progress if line.startswith("Step ")]
    assert [first_index(steps, installer) for installer in INSTALLERS] == sorted(
        first_index(steps, installer) for installer in INSTALLERS
    )
    assert len({first_index(steps, installer) for installer in INSTALLERS}) == 3  # one step each

    history = [layer.get("CreatedBy", "") for layer in reversed(docker_client.images.get(tag).history())]
    layers = [first_index(history, installer) for installer in INSTALLERS]
    assert layers == sorted(layers)
    assert len(set(layers)) == 3

    dpkg = run_in(docker_client, tag, "grep ' install ' /var/log/dpkg.log").splitlines()
    assert first_index(dpkg, " install jq:") < first_index(dpkg, " install nodejs:")
