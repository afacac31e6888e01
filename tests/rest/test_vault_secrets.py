"""The secrets audit over REST: a `static_bearer` token created, replaced and refused through `/v1/vaults`, with
the server on a real SecretService keyring, is found in the keyring and nowhere else: not in any response body
(errors included), not in the server's log or output, not in the data dir (the SQLite store, where every event
lives, and the vault index)."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import keyring
import keyring.backends.SecretService
import pytest
from fake_sandboxes import FakeSandboxes
from rest_serving import RestServer, rest_server
from secrets_audit import forms_of, stream_holds, tree_holds

from server.core.config import ServerConfig
from vault import KEYRING_SERVICE

pytestmark = pytest.mark.keyring

MCP_URL = "https://mcp.example.com/mcp"
TOKEN = "rest-bearer-7c1f0a9e3b5d4c2a81"
NEW_TOKEN = "rest-bearer-rotated-e4d3c2b1a0f9"
REFUSED = "rest-bearer-refused-0f1e2d3c4b5a"
SECRETS = (TOKEN, NEW_TOKEN, REFUSED)
NEEDLES = [form for secret in SECRETS for form in forms_of(secret)]
CLIENT_LOGGERS = ("anthropic", "httpcore", "httpx")


@pytest.fixture
def real_keyring(keyring_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This process (the server runs in a thread of it) talks to the test's own SecretService."""
    previous = keyring.get_keyring()
    for name, value in keyring_env.items():
        monkeypatch.setenv(name, value)
    keyring.set_keyring(keyring.backends.SecretService.Keyring())  # detection ran before this bus existed
    yield keyring_env
    keyring.set_keyring(previous)


@pytest.fixture
def served(config: ServerConfig, real_keyring: dict[str, str]) -> Iterator[RestServer]:
    with rest_server(config, sandboxes=lambda _tg: FakeSandboxes()) as server:  # the production secret store
        yield server


class Responses:
    """Every response body the client got."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def ok(self, raw: Any) -> Any:
        self.bodies.append(raw.http_response.content)
        return raw.parse()

    def refused(self, error: anthropic.APIStatusError) -> None:
        self.bodies.append(error.response.content)


def post_raw(server: RestServer, path: str, body: bytes) -> bytes:
    """A body the SDK cannot send (broken JSON), by hand."""
    request = urllib.request.Request(
        server.base_url + path,
        data=body,
        headers={"Authorization": f"Bearer {server.token}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            content: bytes = answer.read()
    except urllib.error.HTTPError as error:
        content = error.read()
    return content


def refuse(responses: Responses, call: Any, **arguments: Any) -> None:
    with pytest.raises(anthropic.APIStatusError) as refused:
        call(**arguments)
    assert refused.value.status_code in (400, 409)
    responses.refused(refused.value)


def test_a_token_sent_over_rest_is_in_the_keyring_and_nowhere_else(
    served: RestServer,
    real_keyring: dict[str, str],
    config: ServerConfig,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    for name in ("", "server", "vault", "uvicorn", "uvicorn.error", "starlette", "mcp"):
        caplog.set_level(logging.DEBUG, logger=name)  # whatever an earlier test left behind
    client, seen = served.client(), Responses()
    credentials = client.beta.vaults.credentials.with_raw_response
    vault = seen.ok(client.beta.vaults.with_raw_response.create(display_name="audit"))
    bearer = {"type": "static_bearer", "mcp_server_url": MCP_URL, "token": TOKEN}
    credential = seen.ok(credentials.create(vault.id, auth=bearer, display_name="docs"))
    assert keyring.get_password(KEYRING_SERVICE, credential.id) == TOKEN

    seen.ok(credentials.retrieve(credential.id, vault_id=vault.id))
    seen.ok(credentials.list(vault.id))
    rotate = {"type": "static_bearer", "token": NEW_TOKEN}
    seen.ok(credentials.update(credential.id, vault_id=vault.id, auth=rotate))
    assert keyring.get_password(KEYRING_SERVICE, credential.id) == NEW_TOKEN

    create = client.beta.vaults.credentials.create
    refuse(seen, create, vault_id=vault.id, auth={**bearer, "token": REFUSED})  # the URL has a credential
    refuse(seen, create, vault_id=vault.id, auth={**bearer, "mcp_server_url": "not a url", "token": REFUSED})
    refuse(seen, create, vault_id=vault.id, auth={"type": "mcp_oauth", "access_token": REFUSED})
    refuse(seen, create, vault_id=vault.id, auth={**bearer, "token": REFUSED, "unknown": REFUSED})
    refuse(seen, create, vault_id=vault.id, auth={**bearer, "token": REFUSED}, display_name="x" * 300)
    update = client.beta.vaults.credentials.update
    moved = {"type": "static_bearer", "mcp_server_url": "https://elsewhere.example.com/", "token": REFUSED}
    refuse(seen, update, credential_id=credential.id, vault_id=vault.id, auth=moved)
    broken = json.dumps({"auth": {**bearer, "token": REFUSED}}).encode()[:-5]
    seen.bodies.append(post_raw(served, f"/v1/vaults/{vault.id}/credentials", broken))
    assert keyring.get_password(KEYRING_SERVICE, credential.id) == NEW_TOKEN  # no refusal reached the keyring

    seen.ok(credentials.archive(credential.id, vault_id=vault.id))
    assert keyring.get_password(KEYRING_SERVICE, credential.id) is None  # archiving purged it

    assert stream_holds(seen.bodies, NEEDLES) == set()
    # The SDK logs its own request bodies at DEBUG (the client's business); every other logger is the server's.
    server_log = [r.getMessage() for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    assert stream_holds([line.encode() for line in server_log], NEEDLES) == set()
    out, err = capfd.readouterr()
    assert stream_holds([out.encode(), err.encode()], NEEDLES) == set()
    assert tree_holds(config.data_dir, NEEDLES) == {}
    assert any(config.data_dir.rglob("*.db*")), "the store is where the audit looks"
    keyrings = list((Path(real_keyring["XDG_DATA_HOME"]) / "keyrings").glob("*.keyring"))
    assert tree_holds(keyrings[0].parent, NEEDLES) == {}  # encrypted at rest
