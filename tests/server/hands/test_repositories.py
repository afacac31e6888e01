"""`github_repository` resources for real: git against a loopback smart-HTTP server that wants a token.

The server is `git http-backend` behind an HTTP Basic check (tests/git_server.py); the clones are
real git runs; the delivery tests copy into a real session container and look from inside it.
"""

from __future__ import annotations

import base64
import gzip
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import docker
import pytest
from git_server import GitServer, Recorded, Repository, git, git_server, make_repository
from pydantic import ValidationError
from secrets_audit import container_holds

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.egress.repositories import (
    BranchCheckout,
    CommitCheckout,
    RepositoryCache,
    RepositoryError,
    _FileLock,
    normalize_url,
)
from server.services.resources import GitHubRepositoryResource
from server.services.runtime import open_runtime
from server.services.sessions import NewSession
from vault import Secret

pytestmark = pytest.mark.anyio


@pytest.fixture
def token() -> str:
    return f"ghp_{secrets.token_hex(20)}"


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return make_repository(tmp_path / "served", "proj", files=30)


@pytest.fixture
def server(tmp_path: Path, repo: Repository, token: str) -> Iterator[GitServer]:
    with git_server(tmp_path / "served", token) as running:
        yield running


@pytest.fixture
def cache(tmp_path: Path) -> RepositoryCache:
    return RepositoryCache(tmp_path / "cache")


def head(tree: Path, *args: str) -> str:
    return git("rev-parse", *args, "HEAD", cwd=tree)


def body_of(request: Recorded) -> bytes:
    return gzip.decompress(request.body) if request.headers.get("Content-Encoding") == "gzip" else request.body


def files_holding(root: Path, needles: list[bytes]) -> list[str]:
    """Every file under `root` (git internals included) whose bytes contain one of `needles`."""
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and any(n in path.read_bytes() for n in needles)
    ]


def token_forms(token: str) -> list[bytes]:
    return [token.encode(), base64.b64encode(f"x-access-token:{token}".encode())]


# --- cloning ------------------------------------------------------------------------------------


async def test_a_private_repository_is_cloned_with_the_token_on_its_default_branch(
    server: GitServer, repo: Repository, cache: RepositoryCache, token: str, tmp_path: Path
) -> None:
    url = server.url("proj")
    done = await cache.checkout(url, None, Secret("GITHUB_TOKEN", token), tmp_path / "tree")
    tree = tmp_path / "tree"
    assert done.branch == "main"
    assert done.commit == repo.main_commits[-1] == head(tree)
    assert (tree / "src" / "dir0" / "file29.txt").read_text(encoding="utf-8") == "file 29\n"
    assert not (tree / "FEATURE.md").exists()
    assert git("remote", "get-url", "origin", cwd=tree) == url
    requests = server.taken()
    assert requests
    assert all(r.status == 200 for r in requests)
    assert all(server.authorized(r.headers.get("Authorization")) for r in requests)


async def test_a_branch_is_checked_out_and_tracks_origin(
    server: GitServer, repo: Repository, cache: RepositoryCache, token: str, tmp_path: Path
) -> None:
    checkout = BranchCheckout(type="branch", name="feature")
    done = await cache.checkout(server.url("proj"), checkout, Secret("t", token), tmp_path / "tree")
    assert (done.branch, done.commit) == ("feature", repo.feature_commit)
    assert (tmp_path / "tree" / "FEATURE.md").exists()
    assert git("rev-parse", "--abbrev-ref", "feature@{upstream}", cwd=tmp_path / "tree") == "origin/feature"


async def test_a_commit_given_by_a_short_sha_is_checked_out_detached(
    server: GitServer, repo: Repository, cache: RepositoryCache, token: str, tmp_path: Path
) -> None:
    first = repo.main_commits[0]
    checkout = CommitCheckout(type="commit", sha=first[:7])
    done = await cache.checkout(server.url("proj"), checkout, Secret("t", token), tmp_path / "tree")
    assert (done.branch, done.commit) == (None, first)
    assert head(tmp_path / "tree") == first
    assert not (tmp_path / "tree" / "src").exists()


@pytest.mark.parametrize(
    ("given", "kind"),
    [
        ("wrong-token", "repository_authentication_error"),
        (None, "repository_authentication_error"),
    ],
)
async def test_a_missing_or_wrong_token_is_an_authentication_error_that_names_the_fix(
    server: GitServer, cache: RepositoryCache, tmp_path: Path, given: str | None, kind: str
) -> None:
    with pytest.raises(RepositoryError) as caught:
        await cache.checkout(server.url("proj"), None, Secret("t", given) if given else None, tmp_path / "tree")
    assert caught.value.kind == kind
    assert "managed-sessions vault add" in str(caught.value)
    assert "authorization_token" in str(caught.value)
    assert {r.status for r in server.taken()} == {401}
    assert not (tmp_path / "tree").exists()
    assert list(cache.root.glob("*.git")) == []  # no half-made mirror stays behind


@pytest.mark.parametrize(
    ("name", "kind"),
    [("nothing-here", "repository_not_found_error"), ("forbidden", "repository_forbidden_error")],
)
async def test_unknown_and_forbidden_repositories_are_told_apart(
    server: GitServer, cache: RepositoryCache, token: str, tmp_path: Path, name: str, kind: str
) -> None:
    with pytest.raises(RepositoryError) as caught:
        await cache.checkout(server.url(name), None, Secret("t", token), tmp_path / "tree")
    assert caught.value.kind == kind
    assert token not in str(caught.value)


@pytest.mark.parametrize(
    "checkout",
    [
        BranchCheckout(type="branch", name="no-such-branch"),
        CommitCheckout(type="commit", sha="0123456789abcdef0123456789abcdef01234567"),
        CommitCheckout(type="commit", sha="deadbee"),
    ],
)
async def test_an_unknown_branch_or_commit_is_a_checkout_error(
    server: GitServer, cache: RepositoryCache, token: str, tmp_path: Path, checkout: BranchCheckout | CommitCheckout
) -> None:
    with pytest.raises(RepositoryError) as caught:
        await cache.checkout(server.url("proj"), checkout, Secret("t", token), tmp_path / "tree")
    assert caught.value.kind == "repository_checkout_error"
    assert not (tmp_path / "tree").exists()


# --- the token ----------------------------------------------------------------------------------


async def test_the_token_is_in_no_file_of_the_mirror_or_the_working_tree(
    server: GitServer, repo: Repository, cache: RepositoryCache, token: str, tmp_path: Path
) -> None:
    url = server.url("proj")
    await cache.checkout(url, None, Secret("t", token), tmp_path / "one")
    repo.push_commit("later.txt", "later\n")
    await cache.checkout(url, BranchCheckout(type="branch", name="main"), Secret("t", token), tmp_path / "two")
    needles = [*token_forms(token), b"extraheader", b"Authorization"]
    assert files_holding(cache.root, needles) == []
    assert files_holding(tmp_path / "one", needles) == []
    assert files_holding(tmp_path / "two", needles) == []
    mirror = cache.mirror_path(url)
    assert (mirror / "FETCH_HEAD").exists()  # the fetch wrote its files, and they were searched too
    for tree in (tmp_path / "one", tmp_path / "two"):
        assert git("config", "--get-regexp", "url", cwd=tree) == f"remote.origin.url {url}"
        assert not (tree / ".git" / "objects" / "info" / "alternates").exists()
        assert str(cache.root).encode() not in (tree / ".git" / "config").read_bytes()


async def test_the_url_may_not_carry_credentials(cache: RepositoryCache, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vault add"):
        await cache.checkout("https://user:ghp_x@example.invalid/o/r.git", None, None, tmp_path / "t")


async def test_a_destination_that_holds_files_is_refused_and_left_alone(cache: RepositoryCache, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty directory"):
        await cache.checkout("https://example.invalid/o/r.git", None, None, tmp_path / "busy")
    assert (tmp_path / "busy" / "mine.txt").read_text(encoding="utf-8") == "keep\n"


async def test_a_cached_mirror_does_not_stand_in_for_the_token(
    server: GitServer, cache: RepositoryCache, token: str, tmp_path: Path
) -> None:
    await cache.checkout(server.url("proj"), None, Secret("t", token), tmp_path / "one")
    with pytest.raises(RepositoryError) as caught:
        await cache.checkout(server.url("proj"), None, None, tmp_path / "two")
    assert caught.value.kind == "repository_authentication_error"
    assert not (tmp_path / "two").exists()


# --- the cache ----------------------------------------------------------------------------------


async def test_a_second_checkout_fetches_into_the_mirror_and_sees_a_new_commit(
    server: GitServer, repo: Repository, cache: RepositoryCache, token: str, tmp_path: Path
) -> None:
    url = server.url("proj")
    await cache.checkout(url, None, Secret("t", token), tmp_path / "one")
    first = server.taken()
    mirror_inode = cache.mirror_path(url).stat().st_ino
    pushed = repo.push_commit("docs/new.md", "new\n")

    done = await cache.checkout(url, None, Secret("t", token), tmp_path / "two")
    second = server.taken()
    assert done.commit == pushed
    assert (tmp_path / "two" / "docs" / "new.md").read_text(encoding="utf-8") == "new\n"
    assert cache.mirror_path(url).stat().st_ino == mirror_inode
    assert len(list(cache.root.glob("*.git"))) == 1
    assert cache.root.stat().st_mode & 0o777 == 0o700
    # the clone asked for everything; the fetch said what it already had and got only the new commit
    assert not any(b"have " in body_of(r) for r in first)
    assert any(b"have " in body_of(r) for r in second)


async def test_urls_that_differ_only_in_spelling_share_one_mirror(
    server: GitServer, cache: RepositoryCache, token: str, tmp_path: Path
) -> None:
    plain = server.url("proj").removesuffix(".git")
    await cache.checkout(server.url("proj"), None, Secret("t", token), tmp_path / "one")
    await cache.checkout(plain + "/", None, Secret("t", token), tmp_path / "two")
    assert cache.mirror_path(plain) == cache.mirror_path(server.url("proj").replace("http://", "HTTP://"))
    assert len(list(cache.root.glob("*.git"))) == 1


async def test_concurrent_checkouts_of_one_url_all_succeed(
    server: GitServer, repo: Repository, token: str, tmp_path: Path
) -> None:
    # Two cache objects on one root stand for two server processes: only the file lock keeps them apart.
    caches = [RepositoryCache(tmp_path / "cache"), RepositoryCache(tmp_path / "cache")]
    results = {}

    async def one(i: int) -> None:
        results[i] = await caches[i % 2].checkout(server.url("proj"), None, Secret("t", token), tmp_path / f"t{i}")

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(one, i)
    assert {r.commit for r in results.values()} == {repo.main_commits[-1]}
    assert len(list((tmp_path / "cache").glob("*.git"))) == 1
    git("fsck", "--no-progress", cwd=caches[0].mirror_path(server.url("proj")))


async def test_a_cancelled_waiter_never_leaves_the_lock_held(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with anyio.fail_after(10):
        async with _FileLock(path).held():
            with anyio.move_on_after(0.2):
                async with _FileLock(path).held():
                    pytest.fail("the lock was taken twice")
        async with _FileLock(path).held():
            pass  # a cancelled waiter left nothing behind


# --- the resource model -------------------------------------------------------------------------


def test_the_resource_defaults_its_mount_path_and_never_shows_the_token() -> None:
    resource = GitHubRepositoryResource.model_validate(
        {"type": "github_repository", "url": "https://github.com/octo/hello-world.git", "authorization_token": "tok-1"}
    )
    assert resource.target == "/workspace/hello-world"
    assert "tok-1" not in repr(resource)
    assert "authorization_token" not in resource.model_dump()
    assert "tok-1" not in resource.model_dump_json()
    token = resource.token()
    assert token is not None
    assert token.reveal() == "tok-1"
    assert "tok-1" not in repr(token)


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        ({"url": "https://me:ghp_abc@github.com/o/r"}, "vault add"),
        ({"url": "ssh://git@github.com/o/r"}, "https://"),
        ({"url": "https://github.com/"}, "names no repository"),
        ({"url": "https://github.com/o/r", "mount_path": "/etc/r"}, "under /workspace"),
        ({"url": "https://github.com/o/r", "mount_path": "/workspace/../etc"}, "normalized"),
        ({"url": "https://github.com/o/r", "checkout": {"type": "commit", "sha": "xyz"}}, "sha"),
        ({"url": "https://github.com/o/r", "checkout": {"type": "branch", "name": "--upload-pack=x"}}, "branch"),
        ({"url": "https://github.com/o/r", "checkout": {"type": "tag", "name": "v1"}}, "tag"),
        ({"url": "https://github.com/o/r", "extra": 1}, "extra"),
    ],
)
def test_bad_resources_are_refused_with_the_reason(resource: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GitHubRepositoryResource.model_validate({"type": "github_repository", **resource})


def test_normalized_urls() -> None:
    assert normalize_url("HTTPS://GitHub.com:443/Octo/Repo.git/") == "https://github.com/Octo/Repo"
    assert normalize_url("http://127.0.0.1:8080/a/b") == "http://127.0.0.1:8080/a/b"


# --- delivery into a session container ----------------------------------------------------------


@pytest.mark.docker
async def test_a_checkout_lands_in_the_workspace_owned_by_the_sandbox_user_and_no_token_enters(
    data_dir: Path,
    docker_client: docker.DockerClient,
    server: GitServer,
    repo: Repository,
    cache: RepositoryCache,
    token: str,
    tmp_path: Path,
) -> None:
    resource = GitHubRepositoryResource.model_validate(
        {"type": "github_repository", "url": server.url("proj"), "authorization_token": token}
    )
    async with open_runtime(ServerConfig(data_dir=data_dir, image=DEFAULT_IMAGE)) as runtime:
        session = await runtime.sessions.create(NewSession())
        try:
            done = await cache.checkout(resource.url, resource.checkout, resource.token(), tmp_path / "tree")
            sandbox = runtime.sandboxes.sandbox(session.id, session.environment)
            assert await sandbox.put_directory(done.path, resource.target)
            tools = runtime.sandboxes.tools(session.id, session.environment)
            result = await tools.execute(
                "bash",
                {
                    "command": "cd /workspace/proj && stat -c '%u:%g' . .git README.md src/dir0/file7.txt && "
                    "cat src/dir0/file7.txt && git log -1 --format=%H && git remote get-url origin && "
                    "find . -not -uid 1000 | wc -l"
                },
            )
            assert not result.is_error, result.as_text()
            lines = result.as_text().splitlines()
            assert lines[:4] == ["1000:1000"] * 4
            assert lines[4:] == ["file 7", repo.main_commits[-1], server.url("proj"), "0"]
            read = await tools.execute("read", {"file_path": "/workspace/proj/README.md"})
            assert "# proj" in read.as_text()
            assert sandbox.container_id is not None
            assert container_holds(docker_client, sandbox.container_id, token_forms(token)) == set()
            inspected = subprocess.run(
                ["docker", "inspect", sandbox.container_id], capture_output=True, check=True
            ).stdout
            assert token.encode() not in inspected
        finally:
            await runtime.sessions.delete(session.id)


@pytest.mark.docker
async def test_delivery_makes_parents_and_keeps_a_tree_the_agent_already_has(
    data_dir: Path, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_text("from the host\n", encoding="utf-8")
    async with open_runtime(ServerConfig(data_dir=data_dir, image=DEFAULT_IMAGE)) as runtime:
        session = await runtime.sessions.create(NewSession())
        try:
            sandbox = runtime.sandboxes.sandbox(session.id, session.environment)
            tools = runtime.sandboxes.tools(session.id, session.environment)
            assert await sandbox.put_directory(tree, "/workspace/deep/er/repo")
            changed = await tools.execute(
                "bash",
                {"command": "echo edited > /workspace/deep/er/repo/sub/a.txt && stat -c '%u' /workspace/deep/er"},
            )
            assert changed.as_text() == "1000"
            assert not await sandbox.put_directory(tree, "/workspace/deep/er/repo")  # a resumed session
            kept = await tools.execute("bash", {"command": "cat /workspace/deep/er/repo/sub/a.txt"})
            assert kept.as_text() == "edited"
            with pytest.raises(ValueError, match="under /workspace"):
                await sandbox.put_directory(tree, "/etc/repo")
        finally:
            await runtime.sessions.delete(session.id)
