"""`managed-sessions image build`: the default sandbox image, with or without a registry.

The image is a Debian bookworm base plus one shared top part
(`sandbox_image/Dockerfile`: the `sandbox` user, the session directories,
labels), built `FROM` whichever base this machine can get:

- registry: `debian:bookworm-slim`; the top Dockerfile apt-installs the packages.
- debootstrap: a rootfs made from Debian's packages with every package included,
  imported as `managed-sessions-base:bookworm`. It needs Linux, root and the
  `debootstrap` command, but no container registry, which is what air-gapped
  machines and CI runners without registry access have.

`auto` prefers what is already on the engine (the slim image, then a matching
debootstrap base), then a pull, then debootstrap. Phases are logged at INFO; the
tools' own output lines go to `output` (the command: stderr; the server, which
builds a missing default image for its first session: its DEBUG log). Stdout
stays empty.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from server.core.errors import SandboxUnavailableError
from server.core.version import __version__

if TYPE_CHECKING:
    from docker import DockerClient


__all__ = [
    "DEBOOTSTRAP_BASE",
    "REGISTRY_BASE",
    "SANDBOX_PACKAGES",
    "ImageBuildError",
    "ImageSource",
    "Output",
    "build_default_image",
]

logger = logging.getLogger(__name__)

ImageSource = Literal["auto", "registry", "debootstrap"]
Output = Callable[[str], None]
"""Receives the build tools' output, one line at a time, without its line break."""

SANDBOX_PACKAGES = (
    "bash", "coreutils", "procps", "ca-certificates", "passwd", "git", "ripgrep", "curl",
    "python3", "python3-pip", "python3-venv", "python-is-python3",
)  # fmt: skip
"""What the agent tools and a typical coding task need; `passwd` gives the Dockerfile `useradd`."""

REGISTRY_BASE = "debian:bookworm-slim"
DEBOOTSTRAP_BASE = "managed-sessions-base:bookworm"
PACKAGES_LABEL = "io.managed-sessions.packages"
"""Set on the debootstrap base, so a base made for another package list is never reused."""

PULL_TIMEOUT_S = 20
"""Per socket read: a pull that makes progress never trips it, an unreachable registry fails fast."""
BUILD_TIMEOUT_S = 1800
"""Per socket read: an apt step on a slow mirror can be quiet for minutes."""
ERROR_TAIL_LINES = 15

ROOTFS_PARENT = Path("/var/tmp")  # noqa: S108 - only the parent of a private mkdtemp dir
"""On disk, never a tmpfs: the rootfs is ~400 MB and needs working device nodes."""


class ImageBuildError(SandboxUnavailableError):
    """The sandbox image could not be built; the message says which step failed and what to do."""


def _to_stderr(line: str) -> None:
    sys.stderr.write(f"{line}\n")


def build_default_image(
    tag: str, source: ImageSource = "auto", *, base: str | None = None, output: Output = _to_stderr
) -> None:
    """Builds the sandbox image as `tag`, on `base` when given (its `FROM` pulls it if it is missing), else on
    the base `source` picks.

    Raises:
        ImageBuildError: no engine, no usable base, or a failed build step.
    """
    import docker.errors

    started = time.monotonic()
    client = _connect(BUILD_TIMEOUT_S)
    try:
        base = base or _base_image(client, source, output)
        _build_top(client, base, tag, output)
    except (docker.errors.DockerException, OSError) as exc:  # the steps translate the failures they expect
        raise ImageBuildError(f"building {tag!r} failed: {exc}; check the engine with 'docker info'") from exc
    logger.info("built %s from %s in %.0f s", tag, base, time.monotonic() - started)


def _connect(timeout_s: int) -> DockerClient:
    import docker.errors

    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ImageBuildError(
            f"no Docker engine answers: {exc}; start Docker (Docker Desktop, 'systemctl start docker' "
            "or 'dockerd &') or set DOCKER_HOST, then run 'managed-sessions image build' again"
        ) from exc
    return client


def _base_image(client: DockerClient, source: ImageSource, output: Output) -> str:
    if source == "registry":
        return REGISTRY_BASE
    if source == "debootstrap":
        return _debootstrap_base(client, output)
    return _auto_base(client, output)


def _auto_base(client: DockerClient, output: Output) -> str:
    if _has_image(client, REGISTRY_BASE):
        return REGISTRY_BASE
    if _has_matching_base(client):
        return _debootstrap_base(client, output)
    pull_failure = _try_pull(REGISTRY_BASE, output)
    if pull_failure is None:
        return REGISTRY_BASE
    problem = _debootstrap_problem()
    if problem is not None:
        raise ImageBuildError(f"cannot pull {REGISTRY_BASE!r} ({pull_failure}), and {problem}")
    logger.info("cannot pull %s (%s); making the base offline with debootstrap", REGISTRY_BASE, pull_failure)
    return _debootstrap_base(client, output)


def _has_image(client: DockerClient, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def _has_matching_base(client: DockerClient) -> bool:
    import docker.errors

    try:
        image = client.images.get(DEBOOTSTRAP_BASE)
    except docker.errors.ImageNotFound:
        return False
    labels: dict[str, str] = image.labels or {}
    return labels.get(PACKAGES_LABEL) == " ".join(SANDBOX_PACKAGES)


def _try_pull(name: str, output: Output) -> str | None:
    """Pulls `name`; returns None on success, else why it failed."""
    import docker.errors

    repository, _, pull_tag = name.partition(":")
    logger.info("pulling %s", name)
    try:
        for event in _connect(PULL_TIMEOUT_S).api.pull(repository, pull_tag, stream=True, decode=True):
            if "error" in event:
                return str(event["error"])
            if "status" in event and "progressDetail" not in event:
                output(f"{event.get('id', name)}: {event['status']}")
    except (docker.errors.DockerException, OSError) as exc:  # requests' errors are OSErrors
        return str(exc)
    return None


def _debootstrap_problem() -> str | None:
    """Why debootstrap cannot run here, or None when it can."""
    if sys.platform != "linux":
        return "debootstrap runs only on Linux: use --source registry on a machine that reaches Docker Hub"
    if shutil.which("debootstrap") is None:
        return (
            "debootstrap is not installed: apt-get install debootstrap, or run on a machine that reaches "
            "Docker Hub and use --source registry"
        )
    if os.geteuid() != 0:
        return "debootstrap needs root: run 'sudo managed-sessions image build --source debootstrap'"
    return None


def _debootstrap_base(client: DockerClient, output: Output) -> str:
    if _has_matching_base(client):
        logger.info("reusing the base image %s", DEBOOTSTRAP_BASE)
        return DEBOOTSTRAP_BASE
    problem = _debootstrap_problem()
    if problem is not None:
        raise ImageBuildError(f"cannot make the base image offline: {problem}")
    with _scratch_dir() as rootfs:
        started = time.monotonic()
        _run_debootstrap(rootfs, output)
        logger.info("debootstrap finished in %.0f s", time.monotonic() - started)
        _trim_rootfs(rootfs)
        _import_rootfs(client, rootfs)
    return DEBOOTSTRAP_BASE


def _run_debootstrap(rootfs: Path, output: Output) -> None:
    """Runs debootstrap against its default mirror, the one apt on this machine is set up to reach."""
    debootstrap = shutil.which("debootstrap") or "debootstrap"
    command = [debootstrap, "--variant=minbase", f"--include={','.join(SANDBOX_PACKAGES)}", "bookworm", str(rootfs)]
    logger.info("making a Debian bookworm rootfs with debootstrap (about a minute)")
    tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)
    with subprocess.Popen(  # noqa: S603 - a fixed command; the only variable part is our own temp dir
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            output(line.rstrip("\n"))
            tail.append(line.rstrip())
    if process.returncode != 0:
        last_lines = "\n".join(tail)
        raise ImageBuildError(
            f"debootstrap failed (exit {process.returncode}); its last lines:\n{last_lines}\n"
            "Check that this machine reaches the Debian mirror (as apt does), or use --source registry"
        )


def _trim_rootfs(rootfs: Path) -> None:
    """Drops what only the build needed, and the host's network identity debootstrap copied in."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_Packages", "var/log/*.log"):
        for path in rootfs.glob(pattern):
            path.unlink()
    for name in ("etc/resolv.conf", "etc/hostname"):
        (rootfs / name).unlink(missing_ok=True)  # Docker mounts its own at run time


def _import_rootfs(client: DockerClient, rootfs: Path) -> None:
    import docker.errors

    repository, _, base_tag = DEBOOTSTRAP_BASE.partition(":")
    changes = [
        'CMD ["/bin/bash"]',
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f'LABEL {PACKAGES_LABEL}="{" ".join(SANDBOX_PACKAGES)}"',
    ]
    logger.info("importing the rootfs as %s", DEBOOTSTRAP_BASE)
    tar = shutil.which("tar") or "tar"
    command = [tar, "--numeric-owner", "-C", str(rootfs), "-c", "."]
    with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE) as process:  # noqa: S603
        stdout = process.stdout
        assert stdout is not None
        try:
            client.api.import_image_from_stream(
                iter(lambda: stdout.read(1 << 20), b""), repository=repository, tag=base_tag, changes=changes
            )
        except (docker.errors.DockerException, OSError) as exc:
            process.kill()
            raise ImageBuildError(f"importing the rootfs as {DEBOOTSTRAP_BASE!r} failed: {exc}") from exc
    if process.returncode != 0:
        raise ImageBuildError(f"tar of the rootfs failed (exit {process.returncode}); see the message above")


def _build_top(client: DockerClient, base: str, tag: str, output: Output) -> None:
    import docker.errors

    dockerfile = resources.files("server.hands.docker").joinpath("sandbox_image", "Dockerfile").read_bytes()
    buildargs = {"BASE": base, "PACKAGES": " ".join(SANDBOX_PACKAGES), "VERSION": __version__}
    logger.info("building %s from %s", tag, base)
    try:
        stream = client.api.build(
            fileobj=io.BytesIO(dockerfile), tag=tag, buildargs=buildargs, rm=True, forcerm=True, decode=True
        )
        for chunk in stream:
            _show_build_chunk(chunk, base, tag, output)
    except (docker.errors.DockerException, OSError) as exc:  # requests' errors are OSErrors
        raise ImageBuildError(f"building {tag!r} from {base!r} failed: {exc}{_build_hint(base)}") from exc


def _show_build_chunk(chunk: dict[str, Any], base: str, tag: str, output: Output) -> None:
    if "error" in chunk:
        raise ImageBuildError(f"building {tag!r} from {base!r} failed: {chunk['error'].strip()}{_build_hint(base)}")
    text = str(chunk.get("stream") or chunk.get("status") or "")
    for line in text.splitlines():
        if line.strip():
            output(line)


def _build_hint(base: str) -> str:
    if base == REGISTRY_BASE:
        return "; if this machine cannot reach Docker Hub, use --source debootstrap"
    return "; the build's output shows the failing step"


@contextmanager
def _scratch_dir() -> Iterator[Path]:
    """A temp dir for the rootfs, removed afterwards even if debootstrap died with mounts inside."""
    parent = ROOTFS_PARENT if ROOTFS_PARENT.is_dir() else None
    path = Path(tempfile.mkdtemp(prefix="managed-sessions-rootfs-", dir=parent))
    try:
        yield path
    finally:
        _remove_rootfs(path)


def _remove_rootfs(path: Path) -> None:
    # debootstrap mounts /proc and /sys inside the target; deleting through a
    # live mount would delete the host's files, so unmount first or leave it.
    for mount_point in sorted(_mounts_below(path), reverse=True):
        subprocess.run(["umount", "--lazy", mount_point], check=False, stdin=subprocess.DEVNULL)  # noqa: S603, S607
    if _mounts_below(path):
        logger.warning("left %s in place: something is still mounted inside it", path)
        return
    shutil.rmtree(path, ignore_errors=True)


def _mounts_below(path: Path) -> list[str]:
    try:
        lines = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    prefix = f"{path}/"
    return [fields[1] for fields in (line.split() for line in lines) if fields[1].startswith(prefix)]
