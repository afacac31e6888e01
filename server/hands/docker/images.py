"""Sandbox images: one derived image per distinct environment definition, built once and cached.

A session's container never runs its environment's image as is. `ImagePreparer.prepare` derives an
image from it that adds, in this order:

1. the extra CA bundle, when one is configured, trusted by the system store and by every tool that
   reads its own variable (pip, requests, Node, curl, git). It is a public CA certificate, not a
   secret, so baking it into a layer is fine; it lets the package steps below, and the sandbox
   later, get through a TLS-re-signing proxy.
2. the environment's packages: apt, then npm, then pip, each step as root.
3. the sandbox helper at `HELPER_PATH`, a check that `python3` >= 3.8 runs it, the session
   directories owned by uid 1000 (a fresh named volume mounted there copies that ownership), a home
   for uid 1000, and `USER 1000:1000` with `WORKDIR /workspace`.

Cache: the tag is `managed-sessions-env:<16 hex>` of a sha256 over the base image's *id* (a rebuilt
base gives a new image), the package lists, the helper's bytes, the CA bundle's bytes and
`RECIPE_VERSION`. A tag whose `env-key` label carries the same full key is reused without a build.
Concurrent `prepare` calls for one key in this process build once (a lock per key); two processes
may both build, and the same content ends under the same tag.

A base image missing from the engine is pulled once. Images of the `managed-sessions-sandbox`
repository are never pulled (`managed-sessions image build` makes them locally, they are not
published); the server's default image, when it is one of them and missing, raises `ImageMissingError`,
for the agent loop to have it built and try again. Builds use the
engine's classic builder over the default bridge network (package registries must be reachable
from there), or, for a `limited` environment, over its network and egress proxy (`BuildNetwork`), so
the package steps reach only what the environment allows. Builds end within `BUILD_TIMEOUT_S` +
`BUILD_QUIET_TIMEOUT_S`: a failure or timeout names
the step and shows that step's last output. `prepare` blocks: callers run it in a worker thread.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import shlex
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from server.core.config import DEFAULT_IMAGE
from server.core.environments import EnvironmentSpec, Packages
from server.core.errors import ImageMissingError, SandboxUnavailableError
from server.hands.docker.engine import is_unreachable

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.images import Image


__all__ = [
    "HELPER_PATH",
    "SANDBOX_UID",
    "BuildNetwork",
    "ImagePreparer",
    "Progress",
    "SandboxImageError",
    "made_locally",
]

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
"""Receives build output, one line at a time."""

BuildNetwork = Callable[[], AbstractContextManager[tuple[str, dict[str, str]]]]
"""Opens, for one build, the network its steps run on and the build arguments they get (the proxy variables)."""

HELPER_PATH = "/opt/managed-sessions/helper.py"
SANDBOX_UID = 1000
SESSION_DIRS = ("/workspace", "/mnt/session/outputs", "/mnt/session/uploads", "/mnt/skills")
ENV_IMAGE_REPOSITORY = "managed-sessions-env"
KEY_LABEL = "io.managed-sessions.env-key"
KIND_LABEL = "io.managed-sessions.image"
BASE_LABEL = "io.managed-sessions.base"
RECIPE_VERSION = 2
"""Part of the cache key: bump it whenever `_recipe` changes what a derived image contains."""

BUILD_TIMEOUT_S = 1200
"""A build still printing after 20 min is stopped; closing the stream makes the engine cancel it."""
BUILD_QUIET_TIMEOUT_S = 600
"""Per socket read: a step silent for 10 min (a stuck mirror) fails. A build thus ends within 30 min."""
ERROR_TAIL_LINES = 20

_HELPER_DIR = str(PurePosixPath(HELPER_PATH).parent)
_SETUP_FILE = "setup_sandbox.py"
_CA_FILE = "/usr/local/share/ca-certificates/managed-sessions-extra-ca.crt"  # .crt: update-ca-certificates' rule
_CA_BUNDLE = f"{_HELPER_DIR}/ca-bundle.crt"
_CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "NODE_EXTRA_CA_CERTS", "CURL_CA_BUNDLE",
                 "GIT_SSL_CAINFO")  # fmt: skip
_SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem")
_STEP_LINE = re.compile(r"^Step (\d+)/\d+ : ")
_BUILDER_NOISE = re.compile(r"^ ---> |^Removing intermediate container ")
_NON_ZERO = re.compile(r"^The command .* returned a non-zero code: (\d+)$", re.S)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the classic builder colours a step's stderr
_TLS_TROUBLE = re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|SELF_SIGNED_CERT|local issuer", re.I)

# Runs as root in the image with the image's python3, so it needs no shell or coreutils there.
_SETUP_SCRIPT = f"""\
import grp, os, pwd
uid = {SANDBOX_UID}
for path in {SESSION_DIRS!r}:
    os.makedirs(path, exist_ok=True)
    os.chown(path, uid, uid)
try:
    home = pwd.getpwuid(uid).pw_dir
except KeyError:
    home = "/home/sandbox"
    names = {{entry.pw_name for entry in pwd.getpwall()}} | {{entry.gr_name for entry in grp.getgrall()}}
    name = "sandbox" if "sandbox" not in names else "sandbox%d" % uid
    try:
        grp.getgrgid(uid)
    except KeyError:
        with open("/etc/group", "a") as group_file:
            group_file.write("%s:x:%d:\\n" % (name, uid))
    with open("/etc/passwd", "a") as passwd_file:
        passwd_file.write("%s:x:%d:%d:sandbox:%s:/bin/sh\\n" % (name, uid, uid, home))
if home not in ("", "/") and not os.path.exists(home):
    os.makedirs(home)
    os.chown(home, uid, uid)
"""


class SandboxImageError(SandboxUnavailableError):
    """A session's image could not be prepared; the message names the failed step and what to do."""


@dataclass(frozen=True)
class _Step:
    instruction: str
    purpose: str
    """What the step does, for "failed while <purpose>"."""
    hint: str = ""
    """What to do when it fails; empty for steps that only fail when the engine does."""
    diagnosis: str = ""
    """When set, what a failure of this step means, said instead of the generic headline."""


class ImagePreparer:
    """Builds and caches the image each environment definition runs in.

    Args:
        client: a connected Docker client (its own timeout applies to lookups, not to builds).
        default_image: the image for environments that name none.
        extra_ca_bundle: a PEM bundle to trust inside the image, or None.
        helper_source: the helper's bytes; None reads the packaged `server/hands/helper/helper.py`.
    """

    def __init__(
        self,
        client: DockerClient,
        default_image: str,
        extra_ca_bundle: Path | None,
        *,
        helper_source: bytes | None = None,
    ) -> None:
        self._client = client
        self._default_image = default_image
        self._extra_ca_bundle = extra_ca_bundle
        self._helper = helper_source if helper_source is not None else _packaged_helper()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def prepare(
        self, spec: EnvironmentSpec, progress: Progress | None = None, *, build_network: BuildNetwork | None = None
    ) -> str:
        """Returns the tag of the image `spec` runs in, building it first unless it is cached.

        `build_network` is used when a build is needed (a `limited` environment's packages go through its proxy).

        Raises:
            SandboxImageError: the base image is missing, a package step failed, or the build timed out.
        """
        ref = spec.image or self._default_image
        base_id = self._base_id(ref, progress)
        ca_bundle = self._ca_bundle()
        key = _cache_key(base_id, spec.packages, self._helper, ca_bundle)
        tag = f"{ENV_IMAGE_REPOSITORY}:{key[:16]}"
        if self._is_built(tag, key):
            return tag
        with self._lock_for(key):
            if self._is_built(tag, key):  # another thread built it while this one waited
                return tag
            steps = _recipe(ref, base_id, spec.packages, key, with_ca=ca_bundle is not None)
            context = _context(steps, self._helper, ca_bundle)
            started = time.monotonic()
            logger.info("building %s from %s", tag, ref)
            with build_network() if build_network is not None else nullcontext(("default", {})) as (network, args):
                _Build(ref, steps, progress).run(self._client, tag, context, network=network, buildargs=args)
            logger.info("built %s in %.0f s", tag, time.monotonic() - started)
        return tag

    def current_tag(self, spec: EnvironmentSpec) -> str:
        """The tag `prepare` would return for `spec` now, without building or looking for it (one engine call when
        the base image is there): a container running another tag was made from an outdated image."""
        key = _cache_key(self._base_id(spec.image or self._default_image, None), spec.packages, self._helper,
                         self._ca_bundle())  # fmt: skip
        return f"{ENV_IMAGE_REPOSITORY}:{key[:16]}"

    def _lock_for(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _base_id(self, ref: str, progress: Progress | None) -> str:
        image = self._image(ref)
        if image is None:
            self._pull(ref, progress)
            image = self._image(ref)
        if image is None:
            raise SandboxImageError(f"image {ref!r} is still not on the Docker engine after pulling it")
        return str(image.attrs["Id"])

    def _image(self, name: str) -> Image | None:
        import docker.errors

        try:
            return self._client.images.get(name)
        except docker.errors.ImageNotFound:
            return None
        except (docker.errors.DockerException, OSError) as exc:  # requests' errors are OSErrors
            if is_unreachable(exc):
                raise  # the engine is down, not the image: callers wait for it
            raise SandboxImageError(
                f"looking up image {name!r} failed: {exc}; check the engine with 'docker info'"
            ) from exc

    def _pull(self, ref: str, progress: Progress | None) -> None:
        local = made_locally(ref)
        why = "it is made locally, never published" if local else _try_pull(self._client, ref, progress)
        if why is None:
            return
        if ref == self._default_image and local:  # another default (a published image) is not ours to make
            raise ImageMissingError(
                f"the sandbox image {ref!r} is not on the Docker engine ({why}); a session's next turn builds it, "
                "or run 'managed-sessions image build'",
                image=ref,
            )
        if local:
            raise SandboxImageError(
                f"image {ref!r} is not on the Docker engine; run 'managed-sessions image build --tag {ref}' to make "
                f"it, or leave the environment's image unset to use the default {self._default_image!r}"
            )
        fix = (
            f"run 'docker pull {ref}' where a registry is reachable, or 'docker load -i FILE' a saved copy, "
            f"or leave the environment's image unset to use the default {self._default_image!r}"
        )
        raise SandboxImageError(f"image {ref!r} is not on the Docker engine and pulling it failed ({why}); {fix}")

    def _ca_bundle(self) -> bytes | None:
        if self._extra_ca_bundle is None:
            return None
        path = self._extra_ca_bundle
        fix = "point MANAGED_SESSIONS_EXTRA_CA_BUNDLE at a readable PEM file, or unset it"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SandboxImageError(f"cannot read the extra CA bundle {str(path)!r}: {exc.strerror}; {fix}") from exc
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise SandboxImageError(f"the extra CA bundle {str(path)!r} holds no PEM certificate; {fix}")
        return data

    def _is_built(self, tag: str, key: str) -> bool:
        image = self._image(tag)
        # A tag holding another key (a 64-bit prefix collision) is rebuilt rather than run.
        return image is not None and (image.labels or {}).get(KEY_LABEL) == key


def made_locally(ref: str) -> bool:
    """Whether `ref` names an image of the repository `managed-sessions image build` makes (never published)."""
    repository = ref.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:  # a tag, not a registry's port
        repository = repository.rsplit(":", 1)[0]
    return repository == DEFAULT_IMAGE.rsplit(":", 1)[0]


def _packaged_helper() -> bytes:
    return resources.files("server.hands.helper").joinpath("helper.py").read_bytes()


def _try_pull(client: DockerClient, ref: str, progress: Progress | None) -> str | None:
    """Pulls `ref` once; returns None on success, else why it failed."""
    import docker.errors
    import urllib3.exceptions

    logger.info("pulling %s", ref)
    try:
        for event in client.api.pull(ref, stream=True, decode=True):
            if "error" in event:
                return str(event["error"]).strip()
            if progress is not None and "status" in event and "progressDetail" not in event:
                progress(f"{event.get('id', ref)}: {event['status']}")
    except (docker.errors.DockerException, OSError, urllib3.exceptions.HTTPError) as exc:
        if is_unreachable(exc):
            raise
        return str(exc)
    return None


def _cache_key(base_id: str, packages: Packages, helper: bytes, ca_bundle: bytes | None) -> str:
    material = {
        "recipe": RECIPE_VERSION,
        "base": base_id,
        "apt": packages.apt,
        "npm": packages.npm,
        "pip": packages.pip,
        "helper": hashlib.sha256(helper).hexdigest(),
        "ca": None if ca_bundle is None else hashlib.sha256(ca_bundle).hexdigest(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _recipe(ref: str, base_id: str, packages: Packages, key: str, *, with_ca: bool) -> list[_Step]:
    """The Dockerfile, one `_Step` per instruction (the builder numbers its output by instruction)."""
    steps = [
        _Step(f"FROM {base_id}", f"starting from {ref!r}"),  # by id: the image the key was computed for
        _Step("USER root", "switching to root"),
    ]
    if with_ca:
        steps += _ca_steps()
    steps += _package_steps(ref, packages)
    labels = {KIND_LABEL: "env", KEY_LABEL: key, BASE_LABEL: ref}
    python_check = "import sys; sys.exit(0 if sys.version_info >= (3, 8) else 'python3 is ' + sys.version.split()[0])"
    return [
        *steps,
        _Step(f"COPY helper.py {_SETUP_FILE} {_HELPER_DIR}/", "adding the sandbox helper"),
        _Step(
            _exec(["python3", "-c", python_check]),
            "checking for python3 >= 3.8",
            "use an image that has it, or on a Debian or Ubuntu based image add 'python3' to packages.apt",
            f"image {ref!r} has no python3 >= 3.8, which the sandbox helper needs",
        ),
        _Step(
            _exec(["python3", f"{_HELPER_DIR}/{_SETUP_FILE}"]), f"making the session directories for uid {SANDBOX_UID}"
        ),
        _Step(f"USER {SANDBOX_UID}:{SANDBOX_UID}", "switching to the sandbox user"),
        _Step(f"WORKDIR {SESSION_DIRS[0]}", "setting the working directory"),
        _Step("LABEL " + " ".join(f"{name}={json.dumps(value)}" for name, value in labels.items()), "labelling"),
    ]


def _ca_steps() -> list[_Step]:
    candidates = " ".join(_SYSTEM_BUNDLES)
    # With update-ca-certificates, the system bundle gains the extra certificates and stays whole;
    # without it, the tools' bundle is whatever system bundle exists plus the extra certificates.
    trust = (
        f"set -eu; mkdir -p {_HELPER_DIR}; "
        "if command -v update-ca-certificates >/dev/null 2>&1 && update-ca-certificates >/dev/null 2>&1; "
        f"then ln -sf /etc/ssl/certs/ca-certificates.crt {_CA_BUNDLE}; "
        f'else : > {_CA_BUNDLE}; for f in {candidates}; do if [ -f "$f" ]; then cat "$f" >> {_CA_BUNDLE}; '
        f"break; fi; done; cat {_CA_FILE} >> {_CA_BUNDLE}; fi"
    )
    variables = " ".join(f"{name}={_CA_BUNDLE}" for name in _CA_VARIABLES)
    return [
        _Step(f"COPY extra-ca.crt {_CA_FILE}", "adding the extra CA bundle"),
        _Step(f"RUN {trust}", "trusting the extra CA bundle"),
        _Step(f"ENV {variables}", "pointing tools at the CA bundle"),
    ]


def _package_steps(ref: str, packages: Packages) -> list[_Step]:
    apt_get = "export DEBIAN_FRONTEND=noninteractive; apt-get update; apt-get install -y --no-install-recommends"
    apt_clean = "apt-get clean; rm -rf /var/lib/apt/lists/*"
    steps: list[_Step] = []
    if packages.apt:
        no_apt = f"image {ref!r} has no apt-get; packages.apt needs a Debian or Ubuntu based image"
        steps.append(_Step(
            f"RUN set -eu; command -v apt-get >/dev/null 2>&1 || {_fail(no_apt)}; "
            f"{apt_get} {_quoted(packages.apt)}; {apt_clean}",
            f"installing apt packages {packages.apt!r} with apt-get",
            "check the apt package names and versions in the output above; the packages must exist in the image's "
            "Debian or Ubuntu release",
        ))  # fmt: skip
    if packages.npm:
        no_npm = f"image {ref!r} has no npm and no apt-get to install it; use an image with Node.js and npm"
        steps.append(_Step(
            f"RUN set -eu; if ! command -v npm >/dev/null 2>&1; then if command -v apt-get >/dev/null 2>&1; "
            f"then {apt_get} nodejs npm; {apt_clean}; else {_fail(no_npm)}; fi; fi; "
            f"npm install -g --no-audit --no-fund {_quoted(packages.npm)}; npm cache clean --force",
            f"installing npm packages {packages.npm!r} with npm install -g",
            "check the npm package names and versions in the output above",
        ))  # fmt: skip
    if packages.pip:
        no_pip = f"image {ref!r} has no pip (python3 -m pip) and no apt-get to install it; use an image with pip"
        steps.append(_Step(
            "RUN set -eu; if ! python3 -m pip --version >/dev/null 2>&1; then if command -v apt-get >/dev/null 2>&1; "
            f"then {apt_get} python3-pip; {apt_clean}; else {_fail(no_pip)}; fi; fi; "
            # Debian marks its python "externally managed"; the image is disposable, so that guard protects nothing.
            "PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 "
            f"python3 -m pip install --no-cache-dir --no-input --progress-bar off {_quoted(packages.pip)}",
            f"installing pip packages {packages.pip!r} with pip install",
            "check the pip package names and versions in the output above",
        ))  # fmt: skip
    return steps


def _quoted(words: Iterable[str]) -> str:
    return " ".join(shlex.quote(word) for word in words)


def _fail(message: str) -> str:
    return f"{{ echo {shlex.quote(message)} >&2; exit 1; }}"


def _exec(argv: list[str]) -> str:
    """A RUN in exec form, which needs no shell in the image."""
    return f"RUN {json.dumps(argv)}"


def _context(steps: list[_Step], helper: bytes, ca_bundle: bytes | None) -> io.BytesIO:
    """The build context as an in-memory tar; fixed metadata keeps the builder's layer cache stable."""
    files = {
        "Dockerfile": "\n".join(step.instruction for step in steps).encode() + b"\n",
        "helper.py": helper,
        _SETUP_FILE: _SETUP_SCRIPT.encode(),
    }
    if ca_bundle is not None:
        files["extra-ca.crt"] = ca_bundle
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


class _Build:
    """One build: streams its output, knows which step is running, and turns a failure into a message."""

    def __init__(self, ref: str, steps: list[_Step], progress: Progress | None) -> None:
        self._ref = ref
        self._steps = steps
        self._progress = progress
        self._step = steps[0]
        self._tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)

    def run(
        self,
        client: DockerClient,
        tag: str,
        context: io.BytesIO,
        *,
        network: str = "default",
        buildargs: dict[str, str] | None = None,
    ) -> None:
        import docker.errors
        import urllib3.exceptions

        deadline = time.monotonic() + BUILD_TIMEOUT_S
        try:
            stream = client.api.build(
                fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True, pull=False, decode=True,
                timeout=BUILD_QUIET_TIMEOUT_S, network_mode=network, buildargs=buildargs or None,
            )  # fmt: skip
            try:
                for chunk in stream:
                    self._feed(chunk)
                    if time.monotonic() > deadline:
                        raise self._error(f"the build took longer than {BUILD_TIMEOUT_S} s and was stopped")
            finally:
                stream.close()  # drops the connection; the engine then cancels a build still running
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise self._error(f"the build printed nothing for {BUILD_QUIET_TIMEOUT_S} s and was stopped") from exc
        except (docker.errors.DockerException, OSError, urllib3.exceptions.HTTPError) as exc:
            if is_unreachable(exc):
                raise
            raise self._error(f"{exc}; check the engine with 'docker info'") from exc

    def _feed(self, chunk: dict[str, Any]) -> None:
        if "error" in chunk:
            raise self._error(_exit_reason(str(chunk["error"])))
        text = chunk.get("stream") or (f"{chunk['status']}\n" if "status" in chunk else "")
        for raw in _ANSI.sub("", str(text)).splitlines():
            line = raw.rstrip()
            if not line:
                continue
            logger.debug("%s", line)
            if self._progress is not None:
                self._progress(line)
            if (match := _STEP_LINE.match(line)) and 0 < (number := int(match.group(1))) <= len(self._steps):
                self._step = self._steps[number - 1]
                self._tail.clear()  # the error message shows the failing step's own output
            elif not _BUILDER_NOISE.match(line):
                self._tail.append(line)

    def _error(self, reason: str) -> SandboxImageError:
        step = self._step
        tail = "\n".join(self._tail) or "(none)"
        hints = [step.hint] if step.hint else []
        if _TLS_TROUBLE.search(tail):
            hints.append(
                "TLS to the registry failed: if a proxy re-signs TLS on this network, set "
                "MANAGED_SESSIONS_EXTRA_CA_BUNDLE to its CA bundle"
            )
        headline = step.diagnosis or f"preparing the sandbox image from {self._ref!r} failed while {step.purpose}"
        return SandboxImageError("\n".join([f"{headline} ({reason})", "its last output:", tail, *hints]))


def _exit_reason(error: str) -> str:
    """The builder's error without the command it repeats in full."""
    match = _NON_ZERO.match(error.strip())
    return f"exit code {match.group(1)}" if match else error.strip()
