"""The README's REST example, run as written: a user's first contact with the REST API must work.

The code block under "The REST API" is taken from the README and run by this project's Python, with
`ANTHROPIC_BASE_URL` and `ANTHROPIC_API_KEY` in its environment naming the server (as the README says to set
them), against a server with a scripted model and an output file in the session's sandbox."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from model_server import ModelServer, reply
from rest_serving import RestServer

README = Path(__file__).parents[2] / "README.md"


def readme_example() -> str:
    section = README.read_text().split("## The REST API", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's REST section lost its Python example"
    return match.group(1)


def test_the_readme_rest_example_runs_against_the_server(served: RestServer, model: ModelServer) -> None:
    server = served
    model.enqueue(reply("Hello from the sandbox."))
    env = {"PATH": os.environ.get("PATH", ""), "ANTHROPIC_BASE_URL": server.base_url, "ANTHROPIC_API_KEY": server.token}
    done = subprocess.run(
        [sys.executable, "-c", readme_example()], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "Hello from the sandbox."
    assert model.requests[0].messages[-1]["content"][0]["text"] == "Say hello."
