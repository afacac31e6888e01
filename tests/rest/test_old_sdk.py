"""An older `anthropic` SDK (0.9x, still pinned by frameworks that wrap it) runs the whole flow unchanged.

It differs from the current SDK on the wire: `x-api-key` instead of `Authorization: Bearer`, `?beta=true` on
every path, and it drops stream messages whose `event:` name it does not know. The flow runs in that SDK's own
Python (`old_sdk_flow.py`) against the server here, with a scripted model."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from model_server import ModelServer, reply, tool_use
from rest_serving import RestServer

pytestmark = pytest.mark.old_sdk

FLOW = Path(__file__).with_name("old_sdk_flow.py")


def test_the_old_sdk_runs_a_custom_tool_session_through_the_stream(
    old_python: str, served: RestServer, model: ModelServer
) -> None:
    server = served
    model.enqueue(reply(tool_use("lookup", {"word": "zebra"})))
    model.enqueue(reply("A zebra is a striped horse."))
    done = subprocess.run(
        [old_python, str(FLOW), server.base_url, server.token],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "")},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["version"].startswith("0.9")
    # What the old SDK sent, and the server took: the key as x-api-key, ?beta=true on the beta paths.
    beta_paths = [r for r in result["sent"] if r["path"].startswith(("/v1/agents", "/v1/sessions", "/v1/env"))]
    assert beta_paths
    assert all(r["x_api_key"] and not r["authorization"] for r in beta_paths)
    assert all(r["query"].get("beta") == "true" for r in beta_paths)
    # Every event of both turns reached it, under an event name it reads, in the log's order.
    assert result["streamed"] == result["logged"]
    assert result["streamed"][:2] == ["user.message", "session.status_running"]
    for kind in ("agent.custom_tool_use", "user.custom_tool_result", "agent.message", "session.usage"):
        assert kind in result["streamed"]
    assert result["streamed"].count("session.status_idle") == 2
    assert result["streamed"][-1] == "session.status_idle"
    assert result["session"] == "idle"
    assert result["not_found"] == "not_found_error"
    assert model.requests[1].tool_results  # the tool's answer reached the model
