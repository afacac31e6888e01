"""Round trip of `get_session` (and `list_sessions`) over a real stdio connection.

The server runs as a child process (`python -m server serve`) on a temp data dir; the client is the
SDK's `Client`. Baseline, in the same run and through the same client: a trivial `MCPServer` child
whose one tool returns a constant (`_trivial_server.py`), i.e. the SDK's own floor. The three are
timed in interleaved blocks so drift on the machine hits them alike. The client checks every result
against the tool's output schema (jsonschema); that check is also timed alone, so the server's and
the transport's share can be read off (`without_client_validation_median_ms_est`).

Target: get_session median <= 3 ms.

    .venv/bin/python benchmarks/bench_stdio_roundtrip.py [--calls 1000] [--mode auto|legacy]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import anyio
from _common import (
    PYTHON,
    REPO_ROOT,
    check,
    child_env,
    emit,
    environment,
    latency_ms,
    log,
    now,
    ratio,
    temp_dir,
)
from mcp import Client, StdioServerParameters

TARGET_VS_TRIVIAL = 1.5
"""Issue 14: get_session over stdio within 1.5x of a trivial SDK server's tool call."""
TARGET_MEDIAN_MS = 3.0
WARMUP_CALLS = 100
BLOCK = 100
VALIDATIONS = 200
SESSIONS = 20  # list_sessions returns a full default page
TRIVIAL_SERVER = Path(__file__).resolve().parent / "_trivial_server.py"


async def timed_calls(client: Client, tool: str, arguments: dict[str, Any], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = now()
        result = await client.call_tool(tool, arguments)
        samples.append(now() - start)
        if result.is_error:
            raise RuntimeError(f"{tool} failed: {result.content}")
    return samples


async def response_bytes(client: Client, tool: str, arguments: dict[str, Any]) -> int:
    result = await client.call_tool(tool, arguments)
    return len(result.model_dump_json(by_alias=True, exclude_none=True))


async def client_validation(client: Client, tool: str, arguments: dict[str, Any], count: int) -> list[float]:
    """The client-side part of each call: `ClientSession.call_tool` checks every result against the
    tool's output schema (jsonschema), here timed alone on one result."""
    result = await client.call_tool(tool, arguments)
    samples = []
    for _ in range(count):
        start = now()
        await client.session.validate_tool_result(tool, result)
        samples.append(now() - start)
    return samples


async def measure(calls: int, mode: str, data_dir: Path) -> dict[str, Any]:
    ours = StdioServerParameters(command=PYTHON, args=["-m", "server", "serve"], env=child_env(data_dir), cwd=REPO_ROOT)
    floor = StdioServerParameters(command=PYTHON, args=[str(TRIVIAL_SERVER)], env=child_env(), cwd=REPO_ROOT)
    async with Client(ours, mode=mode) as server, Client(floor, mode=mode) as sdk:  # type: ignore[arg-type]
        for index in range(SESSIONS):
            created = await server.call_tool("create_session", {"title": f"bench {index}"})
            session_id = created.structured_content["id"]  # type: ignore[index]
        get_args = {"session_id": session_id}
        plan = [(server, "get_session", get_args), (server, "list_sessions", {}), (sdk, "constant", get_args)]
        for client, tool, arguments in plan:
            await timed_calls(client, tool, arguments, WARMUP_CALLS)
        samples: dict[str, list[float]] = {tool: [] for _, tool, _ in plan}
        for block in range(calls // BLOCK):
            for client, tool, arguments in plan:
                samples[tool] += await timed_calls(client, tool, arguments, BLOCK)
            log(f"roundtrip: block {block + 1}/{calls // BLOCK}")
        sizes = {tool: await response_bytes(client, tool, arguments) for client, tool, arguments in plan}
        validation = {
            tool: await client_validation(client, tool, arguments, VALIDATIONS) for client, tool, arguments in plan
        }
        protocol = server.protocol_version
    return {"samples": samples, "sizes": sizes, "validation": validation, "protocol": protocol}


def figures(measured: dict[str, Any], tool: str) -> dict[str, Any]:
    """Latency of the round trip, with its client-side schema check and what is left without it."""
    figure = latency_ms(measured["samples"][tool])
    validation = latency_ms(measured["validation"][tool])
    return figure | {
        "response_bytes": measured["sizes"][tool],
        "client_output_validation_median_ms": validation["median_ms"],
        "without_client_validation_median_ms_est": round(figure["median_ms"] - validation["median_ms"], 4),
    }


def report(calls: int, mode: str, measured: dict[str, Any]) -> dict[str, Any]:
    get_session, list_sessions, floor = (figures(measured, t) for t in ("get_session", "list_sessions", "constant"))
    targets = [
        check("get_session.median_ms", "<=", TARGET_MEDIAN_MS, "ms", get_session["median_ms"]),
        check(
            "get_session.median_vs_trivial_server",
            "<=",
            TARGET_VS_TRIVIAL,
            "x",
            ratio(get_session["median_ms"], floor["median_ms"]),
        ),
    ]
    return {
        "benchmark": "stdio_roundtrip",
        "targets": targets,
        "meets_target": all(t["meets"] for t in targets),
        "get_session": get_session,
        "list_sessions": list_sessions | {"sessions_per_page": SESSIONS},
        "baseline": {"name": "sdk_trivial_server_constant_tool", **floor},
        "ratios": {
            "get_session_median_vs_baseline": ratio(get_session["median_ms"], floor["median_ms"]),
            "get_session_p99_vs_baseline": ratio(get_session["p99_ms"], floor["p99_ms"]),
            "list_sessions_median_vs_baseline": ratio(list_sessions["median_ms"], floor["median_ms"]),
            "get_session_without_client_validation_vs_baseline_est": ratio(
                get_session["without_client_validation_median_ms_est"], floor["without_client_validation_median_ms_est"]
            ),
        },
        "overhead_over_baseline_ms": {
            "get_session_median": round(get_session["median_ms"] - floor["median_ms"], 4),
            "list_sessions_median": round(list_sessions["median_ms"] - floor["median_ms"], 4),
        },
        "params": {
            "calls": calls,
            "warmup_calls": WARMUP_CALLS,
            "block": BLOCK,
            "mode": mode,
            "validations": VALIDATIONS,
        },
        "protocol_version": measured["protocol"],
        "env": environment(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per tool (a multiple of 100)")
    parser.add_argument("--mode", choices=["auto", "legacy"], default="auto", help="Client protocol mode")
    args = parser.parse_args()
    with temp_dir("roundtrip") as data_dir:
        measured = anyio.run(measure, args.calls, args.mode, data_dir)
    emit(report(args.calls, args.mode, measured))


if __name__ == "__main__":
    main()
