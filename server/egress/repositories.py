"""`github_repository` session resources: cloned on the host, cached there, delivered into /workspace.

Trust model. The token (from the vault or the write-only `authorization_token`) is used here, on the
host, and never enters the sandbox. It reaches git only through the environment of the git process
(`GIT_CONFIG_COUNT`/`KEY`/`VALUE` setting `http.<origin>/.extraheader`), so it is never on argv and
never written to any file of the mirror or the working tree: no `.git/config`, remote URL, reflog,
FETCH_HEAD or packed-refs holds it. Git runs with an environment built from nothing (no inherited
`GIT_TRACE*`, no askpass, no terminal prompt, no credential helper) and with the user's and the
system's git configuration shut out, so nothing stored is consulted and nothing is stored. Git's
error text is scrubbed of the token before it goes into an exception.

Cache. Each URL has one bare mirror under the cache root, keyed by a hash of its normalized URL and
shared by every session. A mirror is used only after a fetch *with this request's credentials*
succeeded: a failed fetch is an error even when the mirror already holds the wanted ref, because the
cache must save bytes, never stand in for authorization (an earlier session's token must not open a
private repository to a session without one). Concurrent users of one mirror serialize on a lock
file (`fcntl.flock`, so other server processes on the same cache are covered too).

Working tree. A clone of the mirror (local, objects hard-linked where possible, no alternates that
would point at host paths), its `origin` set back to the original URL, the wanted branch or commit
checked out, and no reflog entry naming the host path of the mirror.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import posixpath
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.to_thread

from server.core.errors import ServerError
from server.core.sessions import BranchCheckout, Checkout, CommitCheckout
from vault import Secret

__all__ = [
    "BranchCheckout",
    "CheckedOut",
    "Checkout",
    "CommitCheckout",
    "RepositoryCache",
    "RepositoryError",
    "RepositoryErrorKind",
    "check_mount_path",
    "normalize_url",
    "repository_name",
]

logger = logging.getLogger(__name__)

WORKSPACE = "/workspace"
GIT_TIMEOUT_S = 600.0
"""Bound on one git command; a large repository over a slow link takes minutes, a hung server forever."""
TOKEN_USER = "x-access-token"  # noqa: S105 (a user name, not a secret)
"""The user name sent with the token; GitHub, GitHub Enterprise, Gitea and GitLab-style hosts ignore it."""
STDERR_TAIL_CHARS = 600

RepositoryErrorKind = Literal[
    "repository_authentication_error",
    "repository_forbidden_error",
    "repository_not_found_error",
    "repository_checkout_error",
    "repository_clone_error",
]


class RepositoryError(ServerError):
    """A repository could not be cloned or checked out; `kind` is the `session.error` type to report."""

    def __init__(self, kind: RepositoryErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: RepositoryErrorKind = kind


# --- the resource model -------------------------------------------------------------------------


def normalize_url(url: str) -> str:
    """The URL as the cache keys it: scheme and host lower-cased, default port, `.git` and trailing `/` dropped.

    Raises `ValueError` for anything but a plain http(s) URL, naming the fix for embedded credentials.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("https", "http"):
        raise ValueError(f"repository URL {url!r} must start with https:// (or http://)")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "repository URL must not contain credentials (user:token@host); store the token with "
            "`managed-sessions vault add VAULT --type github_token --match <host>` and attach the vault, "
            "or pass it as authorization_token"
        )
    if not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"repository URL {url!r} needs a host and a path, and no query or fragment")
    scheme = parts.scheme.lower()
    port = parts.port  # raises ValueError for a bad port
    netloc = parts.hostname.lower() if port in (None, 443 if scheme == "https" else 80) else f"{parts.hostname}:{port}"
    path = parts.path.rstrip("/").removesuffix(".git").rstrip("/")
    return urlunsplit((scheme, netloc.lower(), path, "", ""))


def repository_name(url: str) -> str:
    """The last path segment without `.git`: the default directory under /workspace."""
    name = urlsplit(url.strip()).path.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]
    if not name or name in (".", ".."):
        raise ValueError(f"repository URL {url!r} names no repository (e.g. https://github.com/owner/repo)")
    return name


def check_mount_path(mount_path: str) -> None:
    if not mount_path.startswith("/") or posixpath.normpath(mount_path) != mount_path:
        raise ValueError(f"mount_path {mount_path!r} must be an absolute, normalized path (no '..', no trailing '/')")
    if not mount_path.startswith(WORKSPACE + "/"):
        raise ValueError(f"mount_path {mount_path!r} must be under {WORKSPACE}/")


# --- running git --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Auth:
    """How one request authenticates: the env entries carrying the header, and what to scrub from git's text."""

    env: Mapping[str, str]
    secrets: tuple[str, ...]

    @classmethod
    def of(cls, url: str, token: Secret | None) -> _Auth:
        if token is None:
            return cls({}, ())
        value = token.reveal()
        encoded = base64.b64encode(f"{TOKEN_USER}:{value}".encode()).decode()
        parts = urlsplit(url)
        origin = urlunsplit((parts.scheme, parts.netloc, "/", "", ""))
        env = {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"http.{origin}.extraheader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {encoded}",
        }
        return cls(env, tuple(s for s in (value, encoded) if s))

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[REDACTED]")
        return text


@dataclass(frozen=True)
class _Finished:
    returncode: int
    stdout: str
    stderr: str


class _Git:
    """Git with an environment made from nothing, isolated from every stored git configuration."""

    def __init__(self, home: Path, timeout_s: float) -> None:
        self._home = home
        self._timeout_s = timeout_s

    def _env(self, auth: _Auth) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(self._home),  # an empty dir: no ~/.gitconfig, ~/.git-credentials or XDG config
            "XDG_CONFIG_HOME": str(self._home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "GIT_ALLOW_PROTOCOL": "http:https:file",
            "LC_ALL": "C",  # stable English messages to classify
            **auth.env,
        }

    async def run(self, args: list[str], auth: _Auth, cwd: Path | None = None) -> _Finished:
        argv = ["git", "-c", "credential.helper=", "-c", "core.askPass=", *args]
        with anyio.fail_after(self._timeout_s):
            done = await anyio.run_process(argv, cwd=cwd, env=self._env(auth), check=False)
        return _Finished(
            done.returncode, done.stdout.decode(errors="replace"), auth.scrub(done.stderr.decode(errors="replace"))
        )


def _classify(stderr: str) -> RepositoryErrorKind:
    text = stderr.lower()
    if any(
        s in text
        for s in ("returned error: 401", "authentication failed", "could not read username", "could not read password")
    ):
        return "repository_authentication_error"
    if "returned error: 403" in text:
        return "repository_forbidden_error"
    if "returned error: 404" in text or "not found" in text:
        return "repository_not_found_error"
    return "repository_clone_error"


def _network_error(url: str, stderr: str) -> RepositoryError:
    kind = _classify(stderr)
    host = urlsplit(url).netloc
    said = stderr.strip()[-STDERR_TAIL_CHARS:]
    messages: dict[RepositoryErrorKind, str] = {
        "repository_authentication_error": (
            f"{host!r} refused the credentials for {url!r} (none given, wrong or expired). Add a token with "
            f"`managed-sessions vault add VAULT --type github_token --match {host}` and attach the vault "
            "with vault_ids, or pass authorization_token in the resource"
        ),
        "repository_forbidden_error": (
            f"the token for {host!r} may not read {url!r}; give it read access to the repository's contents "
            "or use a token that has it"
        ),
        "repository_not_found_error": (
            f"no repository at {url!r}; check the URL (a private repository also looks missing to a token "
            "without access to it)"
        ),
        "repository_clone_error": f"git could not fetch {url!r}; git said: {said}",
    }
    return RepositoryError(kind, messages[kind])


# --- the lock -----------------------------------------------------------------------------------


class _FileLock:
    """An exclusive `flock` taken in a worker thread; a waiter cancelled meanwhile never leaves it held."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._guard = threading.Lock()
        self._held = False
        self._abandoned = False

    def _acquire(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        with self._guard:
            if self._abandoned:  # the waiter went away while this thread blocked
                self._close()
            else:
                self._held = True

    def _close(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)

    def _abandon(self) -> None:
        with self._guard:
            self._abandoned = True
            if self._held:
                self._held = False
                self._close()

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        try:
            await anyio.to_thread.run_sync(self._acquire, abandon_on_cancel=True)
            yield
        finally:
            self._abandon()


# --- the cache ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedOut:
    """A working tree made by `RepositoryCache.checkout`."""

    path: Path
    url: str
    commit: str
    branch: str | None
    """The checked-out branch, or None when HEAD is detached at a commit."""


class RepositoryCache:
    """Bare mirrors under `root`, one per normalized URL, shared between sessions."""

    def __init__(self, root: Path, timeout_s: float = GIT_TIMEOUT_S) -> None:
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)  # mirrors of private repositories: the owner only
        home = root / ".home"
        home.mkdir(mode=0o700, exist_ok=True)
        self._git = _Git(home, timeout_s)
        self._locks: dict[str, anyio.Lock] = {}

    def mirror_path(self, url: str) -> Path:
        return self.root / f"{_key(url)}.git"

    async def checkout(
        self, url: str, checkout: BranchCheckout | CommitCheckout | None, token: Secret | None, dest: Path
    ) -> CheckedOut:
        """Updates (or makes) the mirror of `url` with `token`, then makes a working tree of it in `dest`.

        `dest` must not exist or be empty; on failure it is left absent.

        Raises:
            RepositoryError: the `session.error` kind and what to do about it.
            ValueError: credentials in `url`, or `dest` holds files.
        """
        normalize_url(url)  # refuse credentials in the URL here too
        if await anyio.to_thread.run_sync(_holds_files, dest):
            raise ValueError(f"{str(dest)!r} must not exist or be an empty directory")
        auth = _Auth.of(url, token)
        key = _key(url)
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock, _FileLock(self.root / f"{key}.lock").held():
            mirror = self.root / f"{key}.git"
            if mirror.is_dir():
                await self._fetch(url, mirror, auth)
            else:
                await self._clone_mirror(url, mirror, auth)
            try:
                return await self._working_tree(url, mirror, checkout, dest)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(shutil.rmtree, dest, True)
                raise

    async def _clone_mirror(self, url: str, mirror: Path, auth: _Auth) -> None:
        staging = Path(tempfile.mkdtemp(prefix=f"{mirror.name}.", suffix=".tmp", dir=self.root))
        try:
            done = await self._git.run(["clone", "--bare", "--quiet", "--", url, str(staging)], auth)
            if done.returncode != 0:
                raise _network_error(url, done.stderr)
            os.rename(staging, mirror)  # only a complete mirror ever has the mirror's name
            logger.info("cloned a mirror of %s into %s", url, mirror)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(shutil.rmtree, staging, True)

    async def _fetch(self, url: str, mirror: Path, auth: _Auth) -> None:
        refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
        done = await self._git.run(["fetch", "--quiet", "--prune", "--", url, *refspecs], auth, cwd=mirror)
        if done.returncode != 0:
            raise _network_error(url, done.stderr)
        logger.debug("fetched %s into %s", url, mirror)

    async def _working_tree(
        self, url: str, mirror: Path, checkout: BranchCheckout | CommitCheckout | None, dest: Path
    ) -> CheckedOut:
        local = _Auth({}, ())
        # No reflog during the clone: its entry would name the mirror's host path ("clone: from /...").
        args = ["-c", "core.logAllRefUpdates=false", "clone", "--quiet"]
        if isinstance(checkout, BranchCheckout):
            args += ["--branch", checkout.name]
        elif isinstance(checkout, CommitCheckout):
            args += ["--no-checkout"]
        done = await self._git.run([*args, "--", str(mirror), str(dest)], local)
        if done.returncode != 0:
            raise _checkout_error(url, checkout, done.stderr)
        await self._must(["remote", "set-url", "origin", url], dest, url, checkout)
        if isinstance(checkout, CommitCheckout):
            found = await self._git.run(
                ["rev-parse", "--verify", "--quiet", f"{checkout.sha}^{{commit}}"], local, cwd=dest
            )
            if found.returncode != 0:
                raise _checkout_error(url, checkout, "no such commit on any branch or tag (or the prefix is ambiguous)")
            detach = ["-c", "core.logAllRefUpdates=false", "checkout", "--quiet", "--detach", found.stdout.strip()]
            await self._must(detach, dest, url, checkout)
        commit = (await self._must(["rev-parse", "HEAD"], dest, url, checkout)).strip()
        branch = (await self._git.run(["symbolic-ref", "--quiet", "--short", "HEAD"], local, cwd=dest)).stdout.strip()
        return CheckedOut(dest, url, commit, branch or None)

    async def _must(
        self, args: list[str], cwd: Path, url: str, checkout: BranchCheckout | CommitCheckout | None
    ) -> str:
        done = await self._git.run(args, _Auth({}, ()), cwd=cwd)
        if done.returncode != 0:
            raise _checkout_error(url, checkout, done.stderr)
        return done.stdout


def _checkout_error(url: str, checkout: BranchCheckout | CommitCheckout | None, stderr: str) -> RepositoryError:
    said = stderr.strip()[-STDERR_TAIL_CHARS:]
    if isinstance(checkout, BranchCheckout):
        what = f"branch {checkout.name!r}"
    elif isinstance(checkout, CommitCheckout):
        what = f"commit {checkout.sha!r} (a commit must be reachable from a branch or tag)"
    else:
        what = "the default branch"
    return RepositoryError(
        "repository_checkout_error", f"could not check out {what} of {url!r}; check the name. git said: {said}"
    )


def _holds_files(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def _key(url: str) -> str:
    return hashlib.sha256(normalize_url(url).encode()).hexdigest()[:32]
