"""Harness overhead per turn on the OpenAI-compatible provider against the Anthropic provider, in one run.

Both scripted model servers run as child processes (this script with `--serve anthropic` or `--serve chat`), so
their CPU is not counted as ours: `tests/model_server.py` (Messages API) and `tests/chat_model_server.py` (Chat
Completions). They follow one stateless script: the session's system prompt says `chain=K`; while the
conversation since the last user text holds fewer than K tool results the model asks for `bash true`, then it
answers `done`. Both answer at once, with the same sizes (the same tool call, the same text).

No Docker: the sandboxes are `tests/fake_sandboxes.py`'s in-memory ones (`bash` answered from a dict, in
microseconds), so a turn's figure is the harness's own cost: the provider's SDK call and translation, the loop,
and the events written to SQLite. One in-process runtime (`open_runtime`) serves both providers; a session's
model id picks one (`claude-bench`, `openai/gpt-bench`).

Per round, for each provider (which goes first alternates every round): a message with chain=1 and one with
chain=K through `runtime.inbox.send_message`, and a bare streamed SDK call (`create(stream=True)` with one message
and one tool, the events iterated) to its own scripted server, answered with the same tool call. A turn's
overhead is the marginal cost of a tool turn, (T_K - T_1) / (K - 1), per round, minus the fake tool's median
time, as in `bench_agent_loop.py` (a). Sessions are renewed every few rounds (history stays short). The bare
calls are the baseline: what the SDK and its scripted server cost alone, so the harness's share can be read off.
The same marginal in this process's CPU time (`cpu_per_turn`) leaves out the scripted servers' own speed.

Target (the issue): the OpenAI-compatible provider's median overhead per turn within 10% of the Anthropic
provider's (0.9 <= openai / anthropic <= 1.1). `--profile N` instead runs N turns of each provider under
cProfile and prints where the time goes to stderr. It found the `openai` SDK's `chat.completions.create` walking
the whole request against its types on every turn (about 0.25 ms a message; 5x the Anthropic provider's
overhead at this script's sizes) and building each streamed chunk field by field in Python, so the provider
posts the body as built and reads the chunks with pydantic's validator (`openai_compat._post_stream`, `_chunk`).

    .venv/bin/python benchmarks/bench_providers.py [--rounds 60] [--chain 6] [--profile 300]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import anthropic
import anyio
import openai
from _common import REPO_ROOT, ModelChild, check, emit, environment, latency_ms, log, now, ratio, temp_dir

sys.path.insert(0, str(REPO_ROOT / "tests"))

from fake_sandboxes import FakeSandboxes

from server.core.config import DEFAULT_IMAGE, ServerConfig
from server.core.log import configure_logging
from server.core.models import parse_providers
from server.services.runtime import Runtime, open_runtime
from server.services.sessions import NewSession
from vault.memory_store import MemoryStore

PROVIDERS = ("anthropic", "openai")
MODEL_IDS = {"anthropic": "claude-bench", "openai": "openai/gpt-bench"}
RATIO_RANGE = (0.9, 1.1)  # "within 10% of each other"
ROUNDS_PER_SESSION = 10
TOOL_CALLS_PER_ROUND = 5
PHASE_TIMEOUT_S = 600
BASH = {"name": "bash", "description": "Run a command.", "input_schema": {"type": "object", "properties": {}}}


# The scripted models, in child processes --------------------------------------------------------------------


def chain_of(system: str) -> int:
    return int(m.group(1)) if (m := re.search(r"chain=(\d+)", system)) else 0


def anthropic_script(request: Any) -> Any:
    """Messages API: tool results come back in user messages, one per turn, after the user's text."""
    from model_server import reply, tool_use

    done = 0
    for message in reversed(request.messages):
        content = message.get("content")
        if message.get("role") != "user":
            continue
        if not (isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)):
            break
        done += 1
    return reply(tool_use("bash", {"command": "true"})) if done < chain_of(request.system_text) else reply("done")


def chat_script(request: Any) -> Any:
    """Chat Completions: tool results come back as `tool` messages after the user's text."""
    from chat_model_server import reply, tool_call

    done = 0
    for message in reversed(request.messages):
        if message.get("role") != "tool":
            if message.get("role") in ("user", "system"):
                break
            continue
        done += 1
    return reply(tool_call("bash", {"command": "true"})) if done < chain_of(request.system_text) else reply("done")


def serve(kind: str) -> None:
    """Child mode: serves the script until stdin closes, then prints the violations as one JSON line."""
    from chat_model_server import ChatModelServer
    from model_server import ModelServer

    server: Any = ModelServer() if kind == "anthropic" else ChatModelServer()
    with server:
        server.enqueue(*([anthropic_script if kind == "anthropic" else chat_script] * 500_000))
        print(server.base_url, flush=True)
        sys.stdin.read()
        violations = server.violations
    print(json.dumps({"violations": violations[:5], "violation_count": len(violations)}), flush=True)


# Bare SDK calls (the baseline) ------------------------------------------------------------------------------


def bare_calls(urls: dict[str, str]) -> tuple[dict[str, Callable[[], Awaitable[None]]], Callable[[], Awaitable[None]]]:
    """One streamed call per provider, straight through its SDK, asking for the same tool call a turn gets."""
    claude = anthropic.AsyncAnthropic(base_url=urls["anthropic"], api_key="test-key", max_retries=0)
    gpt = openai.AsyncOpenAI(base_url=urls["openai"], api_key="test-key", max_retries=0)
    user: Any = [{"role": "user", "content": "hi"}]

    async def anthropic_call() -> None:
        stream = await claude.messages.create(
            model="claude-bench", max_tokens=1024, system="chain=1", messages=user, tools=[BASH], stream=True
        )
        async with stream:
            async for _ in stream:
                pass

    async def openai_call() -> None:
        tool: Any = {"type": "function", "function": {"name": "bash", "parameters": BASH["input_schema"]}}
        stream = await gpt.chat.completions.create(
            model="gpt-bench",
            max_completion_tokens=1024,
            messages=[{"role": "system", "content": "chain=1"}, *user],
            tools=[tool],
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            async for _ in stream:
                pass

    async def close() -> None:
        await claude.close()
        await gpt.close()

    return {"anthropic": anthropic_call, "openai": openai_call}, close


# Turns ------------------------------------------------------------------------------------------------------


async def new_session(runtime: Runtime, provider: str, chain: int) -> str:
    session = await runtime.sessions.create(
        NewSession(title="bench", model=MODEL_IDS[provider], system=f"chain={chain}")
    )
    return session.id


async def send(runtime: Runtime, session_id: str, text: str, turns: int) -> tuple[float, float]:
    """One message to its end: wall seconds, and this process's CPU seconds (every thread; the model servers
    are other processes, so their share is left out)."""
    before = runtime.store.last_seq(session_id)
    start, cpu = now(), time.process_time()
    outcome = await runtime.inbox.send_message(session_id, text, 55.0, None)
    elapsed, cpu = now() - start, time.process_time() - cpu
    new_events = runtime.store.read_events(session_id, before, 1_000_000)
    results = sum(1 for e in new_events if e.type == "agent.tool_result")
    if results != turns or outcome.status != "idle":
        raise RuntimeError(f"session {session_id}: {results} tool results (wanted {turns}), status {outcome.status}")
    return elapsed, cpu


class Pair:
    """A provider's two sessions (chain=1 and chain=K), renewed every `ROUNDS_PER_SESSION` rounds."""

    def __init__(self, runtime: Runtime, provider: str, chain: int) -> None:
        self.runtime, self.provider, self.chain = runtime, provider, chain
        self.ids: tuple[str, str] | None = None

    async def renew(self) -> None:
        if self.ids is not None:
            for session_id in self.ids:
                await self.runtime.sessions.delete(session_id)
        self.ids = (
            await new_session(self.runtime, self.provider, 1),
            await new_session(self.runtime, self.provider, self.chain),
        )
        await send(self.runtime, self.ids[0], "warm up", 1)  # not timed: first requests, connections
        await send(self.runtime, self.ids[1], "warm up", self.chain)

    async def round(self, label: str) -> tuple[tuple[float, float], tuple[float, float]]:
        assert self.ids is not None
        return await send(self.runtime, self.ids[0], label, 1), await send(self.runtime, self.ids[1], label, self.chain)


async def fake_tool_times(runtime: Runtime, session_id: str) -> list[float]:
    session = await runtime.sessions.get(session_id)
    tools = runtime.sandboxes.tools(session.id, session.environment)
    times = []
    for _ in range(TOOL_CALLS_PER_ROUND):
        start = now()
        await tools.execute("bash", {"command": "true"})
        times.append(now() - start)
    return times


async def measure(runtime: Runtime, args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    samples: dict[str, dict[str, list[float]]] = {
        p: {"chain_1": [], "chain_k": [], "overhead": [], "cpu": [], "bare_sdk": []} for p in PROVIDERS
    }
    tool_times: list[float] = []
    pairs = {p: Pair(runtime, p, args.chain) for p in PROVIDERS}
    bare, close = bare_calls(urls)
    for provider in PROVIDERS:  # the SDKs' first calls (imports, connections) are not timed
        await bare[provider]()
    try:
        for r in range(args.rounds):
            order = PROVIDERS if r % 2 == 0 else PROVIDERS[::-1]
            if r % ROUNDS_PER_SESSION == 0:
                for provider in order:
                    await pairs[provider].renew()
            for provider in order:
                (t1, cpu1), (tk, cpuk) = await pairs[provider].round(f"round {r}")
                start = now()
                await bare[provider]()
                samples[provider]["bare_sdk"].append(now() - start)
                samples[provider]["chain_1"].append(t1)
                samples[provider]["chain_k"].append(tk)
                samples[provider]["overhead"].append((tk - t1) / (args.chain - 1))
                samples[provider]["cpu"].append((cpuk - cpu1) / (args.chain - 1))
            ids = pairs["anthropic"].ids
            assert ids is not None
            tool_times.extend(await fake_tool_times(runtime, ids[1]))
            if r % 10 == 9:
                medians = {p: statistics.median(samples[p]["overhead"]) * 1e3 for p in PROVIDERS}
                log(
                    f"providers: round {r + 1}/{args.rounds}: "
                    + ", ".join(f"{p} {v:.2f} ms" for p, v in medians.items())
                )
    finally:
        await close()
    tool_s = statistics.median(tool_times)
    for provider in PROVIDERS:
        samples[provider]["overhead"] = [turn - tool_s for turn in samples[provider]["overhead"]]
    return {"samples": samples, "fake_tool": tool_times}


# Profile ----------------------------------------------------------------------------------------------------


async def profile(runtime: Runtime, args: argparse.Namespace) -> dict[str, Any]:
    """N turns of each provider in one message each, under cProfile; prints the top functions to stderr."""
    found: dict[str, Any] = {}
    for provider in PROVIDERS:
        warm = await new_session(runtime, provider, 1)
        await send(runtime, warm, "warm up", 1)  # imports and connections are not profiled
        session_id = await new_session(runtime, provider, args.profile)
        profiler = cProfile.Profile()
        start = now()
        profiler.enable()
        await send(runtime, session_id, "go", args.profile)
        profiler.disable()
        wall = now() - start
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
        log(f"providers: profile of {args.profile} turns on {provider}: {wall / args.profile * 1e3:.2f} ms a turn")
        log(out.getvalue())
        found[provider] = {"turns": args.profile, "ms_per_turn": round(wall / args.profile * 1e3, 3)}
        for done in (warm, session_id):
            await runtime.sessions.delete(done)
    return found


# The run ----------------------------------------------------------------------------------------------------


async def in_process(args: argparse.Namespace, urls: dict[str, str], scratch: Path) -> dict[str, Any]:
    config = ServerConfig(
        data_dir=scratch / "data",
        image=DEFAULT_IMAGE,
        model=MODEL_IDS["anthropic"],
        model_key_present=True,
        providers=parse_providers({}, {"OPENAI_API_KEY": "test-key"}),
    )
    sandboxes = FakeSandboxes(outputs={"true": "ok"})
    async with open_runtime(config, sandboxes=lambda _tg: sandboxes, secrets=MemoryStore()) as runtime:
        with anyio.fail_after(PHASE_TIMEOUT_S):
            if args.profile:
                return {"profile": await profile(runtime, args)}
            return await measure(runtime, args, urls)


def report(args: argparse.Namespace, measured: dict[str, Any], servers: dict[str, Any]) -> dict[str, Any]:
    samples = measured["samples"]
    overhead = {p: round(statistics.median(samples[p]["overhead"]) * 1e3, 3) for p in PROVIDERS}
    bare = {p: round(statistics.median(samples[p]["bare_sdk"]) * 1e3, 3) for p in PROVIDERS}
    beyond = {p: round(overhead[p] - bare[p], 3) for p in PROVIDERS}
    cpu = {p: round(statistics.median(samples[p]["cpu"]) * 1e3, 3) for p in PROVIDERS}
    turn_ratio = ratio(overhead["openai"], overhead["anthropic"])
    low, high = RATIO_RANGE
    targets = [
        check("openai_over_anthropic_overhead_per_turn", ">=", low, "ratio", turn_ratio),
        check("openai_over_anthropic_overhead_per_turn", "<=", high, "ratio", turn_ratio),
    ]
    return {
        "benchmark": "providers",
        "targets": targets,
        "meets_target": all(t["meets"] for t in targets),
        "overhead_per_turn_median_ms": overhead,
        "overhead_beyond_bare_sdk_call_median_ms": beyond,
        "cpu_per_turn_median_ms": cpu,
        "per_provider": {
            p: {
                "overhead_per_turn": latency_ms(samples[p]["overhead"]),
                "cpu_per_turn": latency_ms(samples[p]["cpu"]),
                "message_chain_1": latency_ms(samples[p]["chain_1"]),
                "message_chain_k": latency_ms(samples[p]["chain_k"]),
            }
            for p in PROVIDERS
        },
        "baseline": {
            **{f"bare_sdk_call_streamed_{p}": latency_ms(samples[p]["bare_sdk"]) for p in PROVIDERS},
            "fake_tool_call": latency_ms(measured["fake_tool"]),
        },
        "ratios": {
            "openai_over_anthropic_overhead_per_turn": turn_ratio,
            "openai_over_anthropic_bare_sdk_call": ratio(bare["openai"], bare["anthropic"]),
            "openai_over_anthropic_beyond_bare_sdk_call": ratio(beyond["openai"], beyond["anthropic"]),
            "openai_over_anthropic_cpu_per_turn": ratio(cpu["openai"], cpu["anthropic"]),
            **{f"{p}_overhead_over_bare_sdk_call": ratio(overhead[p], bare[p]) for p in PROVIDERS},
        },
        "model_servers": servers,
        "params": {
            "rounds": args.rounds,
            "chain": args.chain,
            "rounds_per_session": ROUNDS_PER_SESSION,
            "model_ids": MODEL_IDS,
            "sandboxes": "tests/fake_sandboxes.py (in memory, no Docker): the figure is the harness's own cost",
            "model_servers": "tests/model_server.py, tests/chat_model_server.py: child processes answering at once",
        },
        "env": environment() | {"anthropic": metadata.version("anthropic"), "openai": metadata.version("openai")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=60, help="timed rounds: chain=1 + chain=K + a bare call, each provider"
    )
    parser.add_argument("--chain", type=int, default=6, help="K: tool turns in the long message")
    parser.add_argument("--profile", type=int, default=0, help="instead: N turns of each provider under cProfile")
    parser.add_argument("--serve", choices=("anthropic", "chat"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    assert args.chain >= 2, "--chain must be at least 2"
    configure_logging("WARNING")
    children = {
        "anthropic": ModelChild(__file__, "--serve", "anthropic"),
        "openai": ModelChild(__file__, "--serve", "chat"),
    }
    urls = {p: child.base_url for p, child in children.items()}
    os.environ.update(
        ANTHROPIC_BASE_URL=urls["anthropic"],
        ANTHROPIC_API_KEY="test-key",
        OPENAI_BASE_URL=urls["openai"],
        OPENAI_API_KEY="test-key",
    )
    try:
        with temp_dir("providers") as scratch:
            measured = anyio.run(in_process, args, urls, scratch)
    finally:
        servers = {p: child.close() for p, child in children.items()}
    if args.profile:
        emit({"benchmark": "providers", "profile": measured["profile"], "model_servers": servers})
        return
    emit(report(args, measured, servers))


if __name__ == "__main__":
    main()
