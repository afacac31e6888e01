"""Issue 15's skills: what 10 skills of 1 MB each add to a new session's first tool call.

One in-process runtime (`open_runtime`, the default sandbox image, a temp data dir, a warm pool of 1 as by
default). Two agents: one with `--skills` skills of `--skill-mb` MB each (SKILL.md plus one reference file of
random text), one with none. Per round, alternating which goes first and each once the pool is full again: a new
session of the agent, then, timed, what the agent loop does before its first tool call (`SessionSkills.deliver`,
which unpacks the session's skills into its sandbox) and that call (`SandboxTools.execute("bash", "true")`). The
added time is the median with skills less the median without. The skill archive is made once per set of versions
and reused by every session: its first making (the warm-up round) is reported apart.

Target: added time to the first tool call <= 50 ms (median).

    .venv/bin/python benchmarks/bench_skills.py [--rounds 15] [--skills 10] [--skill-mb 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
from pathlib import Path
from typing import Any

import anyio
import docker
from _common import check, emit, environment, latency_ms, log, now, temp_dir

from server.core.agents import SkillRef
from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.log import configure_logging
from server.hands.docker.pool import SandboxPool
from server.hands.docker.sandbox import LABEL_STORE
from server.services.definitions import AgentChanges
from server.services.runtime import Runtime, open_runtime
from server.services.sessions import NewSession

TARGET_MS = 50.0
FILL_TIMEOUT_S = 120.0
PHASE_TIMEOUT_S = 900.0


def make_skill(root: Path, index: int, size_bytes: int) -> Path:
    folder = root / f"bench-skill-{index}"
    folder.mkdir(parents=True)
    skill_md = f"---\nname: bench-skill-{index}\ndescription: Benchmark skill {index}.\n---\n\nRead reference.md.\n"
    (folder / "SKILL.md").write_text(skill_md, encoding="utf-8")
    rng = random.Random(index)
    text = "".join(rng.choices(string.ascii_letters + " \n", k=size_bytes - len(skill_md)))
    (folder / "reference.md").write_text(text, encoding="utf-8")
    return folder


async def agents(runtime: Runtime, scratch: Path, args: argparse.Namespace) -> tuple[str, str]:
    refs = []
    for index in range(args.skills):
        version = await runtime.skills.add_path(make_skill(scratch / "skills", index, int(args.skill_mb * 1024 * 1024)))
        refs.append(SkillRef(type="custom", skill_id=version.skill_id))
    with_skills = await runtime.definitions.create_agent(AgentChanges(name="with skills", skills=refs))
    without = await runtime.definitions.create_agent(AgentChanges(name="without skills"))
    return with_skills.id, without.id


async def pool_full(runtime: Runtime) -> None:
    pool = runtime.sandboxes
    assert isinstance(pool, SandboxPool)
    with anyio.fail_after(FILL_TIMEOUT_S):
        while len(pool.warm.waiting(pool.default_environment)) < 1:
            await pool.warm.changed.wait()


async def first_call(runtime: Runtime, agent_id: str) -> float:
    """A new session's deliveries and first `bash true`, in seconds; the session is deleted afterwards."""
    await pool_full(runtime)
    session = await runtime.sessions.create(NewSession(agent_id=agent_id))
    tools = runtime.sandboxes.tools(session.id, session.environment)
    try:
        start = now()
        await runtime.session_skills.deliver(session)
        result = await tools.execute("bash", {"command": "true"})
        elapsed = now() - start
        if result.is_error:
            raise RuntimeError(f"bash true failed: {result.as_text()[:200]}")
    finally:
        await runtime.sessions.delete(session.id)
    return elapsed


async def measure(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    client = docker.from_env()
    client.images.get(args.image)  # fails early, with the engine's message, if the image is missing
    config = ServerConfig(data_dir=scratch / "data", image=args.image, warm_pool=1)
    samples: dict[str, list[float]] = {"with_skills": [], "without_skills": []}
    try:
        async with open_runtime(config) as runtime:
            store_id = runtime.store.store_id
            with_id, without_id = await agents(runtime, scratch, args)
            cold = await first_call(runtime, with_id)  # makes the archive of this set of versions
            await first_call(runtime, without_id)
            with anyio.fail_after(PHASE_TIMEOUT_S):
                for index in range(args.rounds):
                    order = [("with_skills", with_id), ("without_skills", without_id)]
                    for name, agent_id in order if index % 2 == 0 else order[::-1]:
                        samples[name].append(await first_call(runtime, agent_id))
                    log(
                        f"skills: round {index + 1}/{args.rounds}: with {samples['with_skills'][-1] * 1e3:.1f} ms, "
                        f"without {samples['without_skills'][-1] * 1e3:.1f} ms"
                    )
    finally:
        label = {"label": f"{LABEL_STORE}={store_id}"} if "store_id" in locals() else None
        if label is not None:
            for container in client.containers.list(all=True, filters=label):
                container.remove(force=True)
            for volume in client.volumes.list(filters=label):
                volume.remove(force=True)
        client.close()
    return report(args, samples, cold)


def report(args: argparse.Namespace, samples: dict[str, list[float]], cold_s: float) -> dict[str, Any]:
    added_ms = (statistics.median(samples["with_skills"]) - statistics.median(samples["without_skills"])) * 1e3
    targets = [check("added_first_tool_call", "<=", TARGET_MS, "ms", round(added_ms, 3))]
    return {
        "benchmark": "skills",
        "targets": targets,
        "meets_target": all(t["meets"] for t in targets),
        "first_tool_call": {name: latency_ms(values) for name, values in samples.items()},
        "added_ms": round(added_ms, 3),
        "first_session_with_skills_ms": round(cold_s * 1e3, 3),
        "baseline": {
            "name": "the same runtime's new session of an agent without skills",
            **latency_ms(samples["without_skills"]),
        },
        "ratios": {
            "with_vs_without": round(
                statistics.median(samples["with_skills"]) / statistics.median(samples["without_skills"]), 3
            )
        },
        "params": {"rounds": args.rounds, "skills": args.skills, "skill_mb": args.skill_mb, "image": args.image},
        "env": environment(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="new sessions per agent")
    parser.add_argument("--skills", type=int, default=10, help="skills of the agent that has them")
    parser.add_argument("--skill-mb", type=float, default=1.0, help="size of each skill, in MB")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="the sessions' base image")
    args = parser.parse_args()
    configure_logging("WARNING")
    with temp_dir("skills") as scratch:
        emit(anyio.run(measure, args, scratch))


if __name__ == "__main__":
    main()
