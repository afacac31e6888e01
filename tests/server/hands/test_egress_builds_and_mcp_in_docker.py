"""Under `limited` networking, what opens the proxy besides `allowed_hosts`: package managers for an environment
image's build, and the agent's MCP servers for the sandbox.

An environment with `packages` under `limited` and without `allow_package_managers` is refused at validation,
before any build: `test_environment_tools.py` (`test_invalid_definitions_are_refused_with_the_reason`,
`test_packages_under_limited_need_package_managers_whichever_changes_first`) and `tests/rest/test_environments.py`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from egress_sandboxes import BODY, default_pip_index, egress_config, http_server, limited, make_sandbox, this_host
from model_server import ModelServer, RecordedRequest, Reply, reply, tool_use

from server.core.agents import FULL_TOOLSET, McpServer, McpToolset
from server.core.environments import Packages
from server.hands.docker.images import KIND_LABEL
from server.services.definitions import AgentChanges
from server.services.runtime import Runtime, open_runtime

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

PACKAGE, VERSION = "tabulate", "0.9.0"
"""Small, pure Python, in no other test and not in the default image: the build must fetch it."""


@pytest.fixture
async def runtime(data_dir: Path) -> AsyncIterator[Runtime]:
    async with open_runtime(egress_config(data_dir)) as runtime:
        yield runtime


def _images_with(client: docker.DockerClient, spec: str) -> list[str]:
    """Environment images whose build steps name `spec`."""
    return [
        str(image.id)
        for image in client.images.list(filters={"label": f"{KIND_LABEL}=env"})
        if any(spec in (layer.get("CreatedBy") or "") for layer in image.history())
    ]


def _remove_images(client: docker.DockerClient, image_ids: list[str]) -> None:
    for image_id in image_ids:
        for container in client.containers.list(all=True, filters={"ancestor": image_id}):
            container.remove(force=True)
        with contextlib.suppress(docker.errors.NotFound):
            client.images.remove(image_id, force=True)


@pytest.fixture
def unbuilt(docker_client: docker.DockerClient) -> Iterator[str]:
    """The package spec, with no image built for it before or after the test: the test always builds."""
    spec = f"{PACKAGE}=={VERSION}"
    _remove_images(docker_client, _images_with(docker_client, spec))
    yield spec
    _remove_images(docker_client, _images_with(docker_client, spec))


async def test_an_image_with_packages_is_built_through_the_proxy_under_limited(
    runtime: Runtime, docker_client: docker.DockerClient, unbuilt: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The build's steps run on the limited network, whose only way out is the proxy; the proxy lets the build
    (known by its token) reach the package index, and the sandbox imports what was installed."""
    index = await default_pip_index(runtime)
    probe = await make_sandbox(runtime, limited(package_managers=True))
    reached, output = await probe.run(f"curl -sS -m 30 -o /dev/null -w '%{{http_code}}' {index}")
    if not reached or output.strip()[:1] not in {"2", "3"}:
        pytest.skip(f"no package registry is reachable from this machine: {output[-300:]}")

    with caplog.at_level(logging.DEBUG, logger="server.egress.proxy"):
        sandbox = await make_sandbox(runtime, limited(package_managers=True), Packages(pip=[unbuilt]))
        imported = await sandbox.ok(f"python3 -c 'import {PACKAGE}; print({PACKAGE}.__version__)'")

    assert imported == VERSION
    build = f"build for {sandbox.session_id}"
    allowed = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"egress allow {build} ")]
    assert allowed, [r.getMessage() for r in caplog.records]  # the build's pip went through the proxy
    assert _images_with(docker_client, unbuilt)  # built now (the fixture removed any earlier one)


APT_PACKAGE = "jq"
"""Small, in no other test and not in the default image: apt must fetch it (and its indexes) through the proxy."""


async def test_apt_packages_are_built_through_the_proxy_under_limited(
    runtime: Runtime, docker_client: docker.DockerClient, caplog: pytest.LogCaptureFixture
) -> None:
    """apt (plain HTTP, as Debian's archive is served) honours the build's proxy variables too; its hosts come from
    this machine's apt sources, which `allow_package_managers` opens."""
    _remove_images(docker_client, _images_with(docker_client, f"--no-install-recommends {APT_PACKAGE};"))
    try:
        with caplog.at_level(logging.DEBUG, logger="server.egress.proxy"):
            sandbox = await make_sandbox(runtime, limited(package_managers=True), Packages(apt=[APT_PACKAGE]))
            succeeded, output = await sandbox.run(f"{APT_PACKAGE} --version")
        if not succeeded and "could not" in output.lower() and "apt" in output.lower():
            pytest.skip(f"no Debian archive is reachable from this machine: {output[-300:]}")
        assert succeeded, output
        assert output.startswith(f"{APT_PACKAGE}-"), output
        build = f"build for {sandbox.session_id}"
        assert any(r.getMessage().startswith(f"egress allow {build} ") for r in caplog.records)
    finally:
        _remove_images(docker_client, _images_with(docker_client, f"--no-install-recommends {APT_PACKAGE};"))


async def _mcp_agent(runtime: Runtime, url: str) -> str:
    agent = await runtime.definitions.create_agent(
        AgentChanges(
            name="with-mcp",
            tools=[*FULL_TOOLSET, McpToolset(type="mcp_toolset", mcp_server_name="tools")],
            mcp_servers=[McpServer.model_validate({"type": "url", "name": "tools", "url": url})],
        )
    )
    return agent.id


@pytest.mark.parametrize("allow_mcp_servers", [True, False])
async def test_allow_mcp_servers_opens_the_agents_mcp_hosts_to_the_sandbox(
    runtime: Runtime, allow_mcp_servers: bool
) -> None:
    with http_server() as (server, port):
        host = this_host()
        agent_id = await _mcp_agent(runtime, f"http://{host}:{port}/mcp")
        sandbox = await make_sandbox(runtime, limited(mcp_servers=allow_mcp_servers), agent_id=agent_id)
        assert sandbox.mcp_hosts == [f"{host}:{port}"]  # what the loop passes, from the agent's servers

        answer = await sandbox.ok(f"curl -s -w '\\n%{{http_code}}' http://{host}:{port}/from-the-sandbox")
        egress = await sandbox.egress()

    if allow_mcp_servers:
        assert answer == f"{BODY.decode()}\n200"
        assert server.paths == ["/from-the-sandbox"]  # type: ignore[attr-defined]
        assert f"{host}:{port}" in egress.allowed_hosts
        assert egress.recent_refusals == []
    else:
        assert answer.endswith("403"), answer
        assert "allowed_hosts" in answer
        assert server.paths == []  # type: ignore[attr-defined]
        assert f"{host}:{port}" not in egress.allowed_hosts
        assert [(r.host, r.port) for r in egress.recent_refusals] == [(host, port)]


async def test_a_turn_reaches_the_agents_mcp_host_from_the_sandbox(data_dir: Path, model: ModelServer) -> None:
    """The same through the agent loop: the model's bash call curls the MCP server's host from the sandbox."""
    config = dataclasses.replace(
        egress_config(data_dir), model="claude-test", model_key_present=True, model_retry_delays_s=(0.01,)
    )
    with http_server() as (server, port):
        host = this_host()

        def answer(request: RecordedRequest) -> Reply:
            [result] = request.tool_results().values()
            return reply(f"The sandbox got: {result['content']}")

        model.enqueue(reply(tool_use("bash", {"command": f"curl -sS http://{host}:{port}/in-a-turn"})), answer)
        async with open_runtime(config) as runtime:
            agent_id = await _mcp_agent(runtime, f"http://{host}:{port}/mcp")
            sandbox = await make_sandbox(runtime, limited(mcp_servers=True), agent_id=agent_id)
            outcome = await runtime.inbox.send_message(sandbox.session_id, "fetch it", 120, None)

    assert outcome.status == "idle", outcome.events
    assert outcome.reply is not None
    assert BODY.decode().strip() in outcome.reply
    assert "/in-a-turn" in server.paths  # type: ignore[attr-defined]
