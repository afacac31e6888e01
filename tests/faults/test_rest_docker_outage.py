"""The REST front with the Docker engine gone: a call that needs the sandbox (a session's output files) answers
an error that says the engine does not answer and what to do; everything else keeps working, and the same call
works once the engine is back."""

from __future__ import annotations

import io

import anthropic
import pytest
from docker_proxy import DockerProxy
from rest_serving import rest_server

from server.core.config import DEFAULT_IMAGE, ServerConfig
from vault.memory_store import MemoryStore


def test_output_files_need_the_engine_and_say_so_while_the_rest_goes_on(
    config: ServerConfig, engine: DockerProxy
) -> None:
    served_config = ServerConfig(data_dir=config.data_dir, image=DEFAULT_IMAGE, model="claude-test", engine_wait_s=1)
    with rest_server(served_config, secrets=MemoryStore()) as server:  # the real Docker backend, through the proxy
        client = server.client()
        agent = client.beta.agents.create(name="outage", model="claude-test")
        environment = client.beta.environments.create(name="outage")
        session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)

        engine.cut()
        with pytest.raises(anthropic.APIStatusError) as refused:
            client.beta.files.list(scope_id=session.id)
        assert refused.value.status_code == 500
        assert "Docker" in str(refused.value)
        assert "failed unexpectedly" not in str(refused.value)
        # What needs no sandbox goes on: reads, uploads, new sessions.
        assert client.beta.sessions.retrieve(session.id).status == "idle"
        client.beta.files.upload(file=("a.txt", io.BytesIO(b"a"), "text/plain"))
        client.beta.sessions.create(agent=agent.id, environment_id=environment.id)

        engine.restore()
        assert list(client.beta.files.list(scope_id=session.id)) == []
