"""The egress proxy from inside real sandboxes, under bad input and across a server restart.

A sandbox's code is untrusted: it opens far more connections than it may, asks for names that resolve to this
machine, for ports nobody allowed, and sends lines that are not HTTP. Each gets a clear refusal, another
session's sandbox is served meanwhile, and the server's file descriptors come back. A container that outlives
its server (a restart) is admitted again by the next one.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import pytest
from egress_sandboxes import BODY, Sandbox, egress_config, http_server, limited, make_sandbox, this_host

from server.services.runtime import open_runtime

pytestmark = [pytest.mark.docker, pytest.mark.anyio]


@pytest.mark.parametrize("port_taken", [False, True])
async def test_a_running_container_is_admitted_again_by_the_next_server(data_dir: Path, port_taken: bool) -> None:
    """The next server listens where the container's proxy variables point; if something else took that port
    meanwhile, the container is remade (its volumes kept) rather than left cut off."""
    with http_server() as (server, port), contextlib.ExitStack() as squatter:
        host = this_host()
        async with open_runtime(egress_config(data_dir)) as runtime:
            before = await make_sandbox(runtime, limited(f"{host}:{port}"))
            assert await before.ok(f"curl -sS http://{host}:{port}/first") == BODY.decode().strip()
            await before.ok("echo kept > /tmp/marker; echo kept > /workspace/marker")
            proxy = (await before.egress()).proxy
            assert proxy is not None
        if port_taken:
            gateway, _, proxy_port = proxy.removeprefix("http://").rpartition(":")
            squatter.enter_context(socket.create_server((gateway, int(proxy_port))))
        async with open_runtime(egress_config(data_dir)) as runtime:
            after = Sandbox(runtime, before.session_id)
            kept = await after.ok("cat /workspace/marker; cat /tmp/marker 2>/dev/null || echo remade")
            assert kept == ("kept\nremade" if port_taken else "kept\nkept")  # the volume's file, the container's
            succeeded, output = await after.run(f"curl -sS -m 20 http://{host}:{port}/second")
            assert succeeded, output
            assert output == BODY.decode().strip()
            assert ((await after.egress()).proxy == proxy) is not port_taken
        assert server.paths == ["/first", "/second"]  # type: ignore[attr-defined]
