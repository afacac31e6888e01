"""A 1,000-file repository checked out into a session's /workspace, cold (no mirror) and cached.

The repository is served by the loopback smart-HTTP server of `tests/git_server.py` (the real
`git http-backend`, a token required); the session is a real runtime's (default image). One timed
run is `RepositoryCache.checkout` (fetch or clone the mirror, make a working tree) plus
`DockerSandbox.put_directory` into `/workspace/<name>`, on a container already started (its start is
the session's cost, not the repository's; `bench_sandbox.py` measures it).

  cold:     a fresh cache root each run: `git clone --bare` of the server, then the working tree.
  cached:   the mirror is there: an up-to-date `git fetch`, then the working tree.
  baseline: a plain `git clone` of the same URL, same token (sent the same way), into a temp dir:
            no cache, no container.

Runs are interleaved (baseline, cold, cached per round) so load on the machine hits all alike. The
issue sets no figure to meet; the JSON reports the medians, the split between host work and delivery,
and the ratios to the baseline.

    .venv/bin/python benchmarks/bench_repositories.py [--files 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import shutil
import sys
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from _common import REPO_ROOT, emit, environment, log, now, ratio, seconds, temp_dir

sys.path.insert(0, str(REPO_ROOT / "tests"))

from git_server import GitServer, git_server, make_repository

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.log import configure_logging
from server.egress.repositories import RepositoryCache
from server.hands.docker.sandbox import DockerSandbox
from server.services.runtime import open_runtime
from server.services.sessions import NewSession
from vault import Secret

PHASE_TIMEOUT_S = 900.0


async def plain_clone(server: GitServer, url: str, dest: Path) -> float:
    """`git clone` as a user would run it, the token in the same env-only header; seconds taken."""
    header = base64.b64encode(f"x-access-token:{server.token}".encode()).decode()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(dest.parent),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{server.origin}/.extraheader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {header}",
    }
    started = now()
    await anyio.run_process(["git", "clone", "--quiet", url, str(dest)], env=env)
    return now() - started


async def ours(
    cache: RepositoryCache, sandbox: DockerSandbox, url: str, token: Secret, scratch: Path, target: str
) -> dict[str, float]:
    """Checkout plus delivery; seconds for each and in all."""
    started = now()
    done = await cache.checkout(url, None, token, scratch / "tree")
    checked_out = now()
    assert await sandbox.put_directory(done.path, target)
    delivered = now()
    await anyio.to_thread.run_sync(partial(shutil.rmtree, done.path))
    return {"total": delivered - started, "checkout": checked_out - started, "delivery": delivered - checked_out}


async def measure(files: int, runs: int, scratch: Path) -> dict[str, Any]:
    token = f"bench_{secrets.token_hex(16)}"
    make_repository(scratch / "served", "bench", files=files)
    samples: dict[str, list[dict[str, float]]] = {"cold": [], "cached": [], "baseline": []}
    with git_server(scratch / "served", token) as server:
        url = server.url("bench")
        async with open_runtime(ServerConfig(data_dir=scratch / "data", image=DEFAULT_IMAGE)) as runtime:
            session = await runtime.sessions.create(NewSession())
            try:
                tools = runtime.sandboxes.tools(session.id, session.environment)
                assert not (await tools.execute("bash", {"command": "true"})).is_error  # the container runs
                sandbox = runtime.sandboxes.sandbox(session.id, session.environment)
                warm = RepositoryCache(scratch / "warm-cache")
                await warm.checkout(url, None, Secret("t", token), scratch / "warm-tree")  # the mirror exists
                with anyio.fail_after(PHASE_TIMEOUT_S):
                    for i in range(runs):
                        log(f"bench_repositories: round {i + 1}/{runs}")
                        samples["baseline"].append({"total": await plain_clone(server, url, scratch / f"plain-{i}")})
                        cold = RepositoryCache(scratch / f"cold-cache-{i}")
                        samples["cold"].append(
                            await ours(cold, sandbox, url, Secret("t", token), scratch, f"/workspace/cold-{i}")
                        )
                        samples["cached"].append(
                            await ours(warm, sandbox, url, Secret("t", token), scratch, f"/workspace/cached-{i}")
                        )
                counted = await tools.execute("bash", {"command": "ls /workspace/cached-0/src/*/ | grep -c txt"})
                assert counted.as_text().strip() == str(files), counted.as_text()
            finally:
                await runtime.sessions.delete(session.id)
    return samples


def figures(samples: list[dict[str, float]], part: str) -> dict[str, float | int]:
    return seconds([s[part] for s in samples])


def report(files: int, runs: int, samples: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    cold, cached, baseline = (figures(samples[k], "total") for k in ("cold", "cached", "baseline"))
    return {
        "benchmark": "repositories",
        "targets": [],  # the issue asks for the figures, not a bound
        "meets_target": True,
        "cold": {
            **cold,
            "checkout": figures(samples["cold"], "checkout"),
            "delivery": figures(samples["cold"], "delivery"),
        },
        "cached": {
            **cached,
            "checkout": figures(samples["cached"], "checkout"),
            "delivery": figures(samples["cached"], "delivery"),
        },
        "baseline": {"name": "plain_git_clone_to_temp_dir", **baseline},
        "ratios": {
            "cold_vs_baseline": ratio(cold["median_s"], baseline["median_s"]),
            "cached_vs_baseline": ratio(cached["median_s"], baseline["median_s"]),
            "cached_vs_cold": ratio(cached["median_s"], cold["median_s"]),
        },
        "params": {"files": files, "runs": runs, "server": "tests/git_server.py (git http-backend, token required)"},
        "env": environment(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="files in the repository")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each kind")
    args = parser.parse_args()
    configure_logging("WARNING")
    with temp_dir("repositories") as scratch:
        samples = anyio.run(measure, args.files, args.runs, scratch)
    emit(report(args.files, args.runs, samples))


if __name__ == "__main__":
    main()
