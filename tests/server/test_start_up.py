"""Background start-up work waits for the first answered call, or for the fallback when none comes; and `serve`
answers its first call without importing Docker's SDK, requests, keyring or a model SDK.

The import check runs the real `serve` over stdio with `PYTHONPROFILEIMPORTTIME` (the child reports each import
on stderr as it happens, in order with its log lines), calls `list_sessions`, and waits for the log line that says
the background work begins: whatever was imported before that line was imported on the way to the first answer.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import anyio
import pytest
from stdio_child import StdioServer

from server.services.start_up import StartUp

HANG_GUARD_S = 60
START_UP_OVER = "start-up over (first call answered)"
NOT_BEFORE_THE_FIRST_ANSWER = {"docker", "requests", "urllib3", "keyring", "anthropic", "openai", "yaml"}


@pytest.mark.anyio
async def test_background_work_waits_for_the_first_answer() -> None:
    start_up = StartUp(settle_s=0, fallback_s=math.inf)
    over = anyio.Event()

    async def wait() -> None:
        await start_up.over()
        over.set()

    with anyio.fail_after(HANG_GUARD_S):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            assert not over.is_set()  # no call answered yet, and no fallback
            start_up.answered()
            await over.wait()


@pytest.mark.anyio
async def test_background_work_begins_after_the_fallback_when_no_call_comes() -> None:
    start_up = StartUp(settle_s=math.inf, fallback_s=0)
    with anyio.fail_after(HANG_GUARD_S):
        await start_up.over()  # the settle time counts only after an answer


def imports_before(stderr: str, marker: str) -> set[str]:
    """The top-level packages the child imported before the line holding `marker`."""
    before, found, _ = stderr.partition(marker)
    assert found, stderr[-4000:]
    return {match.group(1).split(".")[0] for match in re.finditer(r"^import time:.*\|\s*([\w.]+)\s*$", before, re.M)}


def test_serve_answers_its_first_call_without_docker_keyring_or_a_model_sdk(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    stderr_path = tmp_path / "serve.stderr"
    env = {**subprocess_env, "PYTHONPROFILEIMPORTTIME": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    server = StdioServer(env, stderr_path)
    try:
        assert server.call("list_sessions", {})["sessions"] == []
        deadline = time.monotonic() + HANG_GUARD_S  # only a hang guard: nothing here is timed
        while START_UP_OVER not in server.stderr():
            assert time.monotonic() < deadline, server.stderr()[-4000:]
            time.sleep(0.05)
    finally:
        server.stop()
    loaded = imports_before(server.stderr(), START_UP_OVER)
    assert {"mcp", "server", "vault"} <= loaded  # the report is read right
    assert loaded.isdisjoint(NOT_BEFORE_THE_FIRST_ANSWER), sorted(loaded & NOT_BEFORE_THE_FIRST_ANSWER)
