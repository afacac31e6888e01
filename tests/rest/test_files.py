"""`client.beta.files` and `client.beta.sessions.resources` against the server, sync and async. Sessions are
made over MCP on the same server (`/mcp`) until the REST session routes land; output files come from fake
sandboxes here (the Docker end-to-end test is `tests/e2e/test_files_e2e.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import anyio
import pytest
from anthropic.types.beta import BetaFileMetadata
from anthropic.types.beta.sessions import BetaManagedAgentsFileResource
from fake_sandboxes import FakeSandboxes
from mcp_http import call_tool, mcp_client
from rest_serving import RestServer, rest_server

from server.core.config import ServerConfig
from vault.memory_store import MemoryStore

UNKNOWN_FILE = "file_01JD7Y3Q4K2W8T6X0V5N9R1M3P"


@dataclass(frozen=True)
class Served:
    rest: RestServer
    sandboxes: FakeSandboxes
    data_dir: Path


@pytest.fixture
def served(config: ServerConfig) -> Iterator[Served]:
    fake = FakeSandboxes()
    small = ServerConfig(data_dir=config.data_dir, model=config.model, image=config.image, max_upload_bytes=1000)
    with rest_server(small, sandboxes=fake, secrets=MemoryStore()) as rest:
        yield Served(rest, fake, config.data_dir)


def create_session(rest: RestServer, **arguments: Any) -> dict[str, Any]:
    return anyio.run(call_tool, rest, "create_session", arguments)


def test_an_upload_reads_back_with_its_metadata_and_bytes(served: Served) -> None:
    client = served.rest.client()
    uploaded = client.beta.files.upload(file=("../reports/q3.csv", b"a,b\n1,2\n", "text/csv"))
    assert uploaded.id.startswith("file_")
    assert (uploaded.filename, uploaded.mime_type, uploaded.size_bytes) == ("q3.csv", "text/csv", 8)
    assert uploaded.downloadable is True
    assert uploaded.scope is None

    raw = client.beta.files.with_raw_response.retrieve_metadata(uploaded.id)
    assert set(BetaFileMetadata.model_fields) <= set(raw.json())
    assert client.beta.files.download(uploaded.id).read() == b"a,b\n1,2\n"
    assert [f.id for f in client.beta.files.list()] == [uploaded.id]

    deleted = client.beta.files.delete(uploaded.id)
    assert (deleted.id, deleted.type) == (uploaded.id, "file_deleted")
    assert list(client.beta.files.list()) == []
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.retrieve_metadata(uploaded.id)


def test_unknown_ids_are_not_found_on_every_route(served: Served) -> None:
    client = served.rest.client()
    for call in (
        client.beta.files.retrieve_metadata,
        client.beta.files.delete,
        lambda file_id: client.beta.files.download(file_id).read(),
    ):
        with pytest.raises(anthropic.NotFoundError):
            call(UNKNOWN_FILE)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.retrieve_metadata("not-an-id")


def test_an_upload_over_the_limit_is_refused_whole(served: Served) -> None:
    client = served.rest.client()
    with pytest.raises(anthropic.APIStatusError) as refused:
        client.beta.files.upload(file=("big.bin", b"x" * 70_000, "application/octet-stream"))
    assert refused.value.status_code == 413
    assert "1000 bytes" in str(refused.value)
    with pytest.raises(anthropic.APIStatusError) as refused_in_flight:  # under the declared cap, over the file limit
        client.beta.files.upload(file=("big.bin", b"x" * 1001, "application/octet-stream"))
    assert refused_in_flight.value.status_code == 413
    assert list(client.beta.files.list()) == []
    store = served.data_dir / "files"  # nothing half-written stays behind
    assert list((store / "uploads").iterdir()) == []
    assert list((store / "incoming").iterdir()) == []


def test_uploads_list_newest_first_across_pages(served: Served) -> None:
    client = served.rest.client()
    made = [client.beta.files.upload(file=(f"f{i}.txt", b"x", "text/plain")).id for i in range(5)]
    first = client.beta.files.list(limit=2)
    assert [f.id for f in first.data] == made[::-1][:2]
    assert first.next_page is not None
    assert first.next_page.startswith("page_")
    assert [f.id for f in client.beta.files.list(limit=2)] == made[::-1]
    assert {f.id for f in client.beta.files.list(ids=[made[0], UNKNOWN_FILE])} == {made[0]}
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.list(limit=0)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.list(page="nonsense")


def test_a_sessions_outputs_list_by_scope_with_stable_ids_and_download(served: Served) -> None:
    client = served.rest.client()
    session = create_session(served.rest)
    served.sandboxes.files[session["id"]] = {"report.md": b"# done\n", "data/out.csv": b"x,y\n"}

    listed = list(client.beta.files.list(scope_id=session["id"]))
    assert sorted(f.filename for f in listed) == ["out.csv", "report.md"]
    assert all(f.scope is not None and f.scope.id == session["id"] and f.downloadable for f in listed)
    again = {f.id for f in client.beta.files.list(scope_id=session["id"])}
    assert again == {f.id for f in listed}

    report = next(f for f in listed if f.filename == "report.md")
    assert client.beta.files.retrieve_metadata(report.id).size_bytes == 7
    assert client.beta.files.download(report.id).read() == b"# done\n"
    with pytest.raises(anthropic.BadRequestError):
        client.beta.files.delete(report.id)
    assert list(client.beta.files.list()) == []  # outputs are listed by their scope only
    with pytest.raises(anthropic.NotFoundError):
        client.beta.files.list(scope_id="sesn_01JD7Y3Q4K2W8T6X0V5N9R1M3P")


def test_file_resources_are_added_listed_and_removed(served: Served) -> None:
    client = served.rest.client()
    uploaded = client.beta.files.upload(file=("in.csv", b"1,2\n", "text/csv"))
    session = create_session(served.rest, resources=[{"type": "file", "file_id": uploaded.id}])
    (first,) = session["resources"]
    assert first["mount_path"] == f"/mnt/session/uploads/{uploaded.id}"

    added = client.beta.sessions.resources.add(
        session["id"], type="file", file_id=uploaded.id, mount_path="/data/in.csv"
    )
    assert isinstance(added, BetaManagedAgentsFileResource)
    assert added.mount_path == "/data/in.csv"
    raw = client.beta.sessions.resources.with_raw_response.retrieve(added.id, session_id=session["id"])
    assert set(BetaManagedAgentsFileResource.model_fields) <= set(raw.json())
    assert [r.id for r in client.beta.sessions.resources.list(session["id"])] == [first["id"], added.id]

    deleted = client.beta.sessions.resources.delete(added.id, session_id=session["id"])
    assert (deleted.id, deleted.type) == (added.id, "session_resource_deleted")
    assert [r.id for r in client.beta.sessions.resources.list(session["id"])] == [first["id"]]
    assert served.sandboxes.placed[session["id"]].keys() == {first["mount_path"]}

    client.beta.files.delete(uploaded.id)  # the session keeps its own copy
    assert served.sandboxes.placed[session["id"]][first["mount_path"]].read_bytes() == b"1,2\n"


def test_bad_resources_are_refused_with_what_to_fix(served: Served) -> None:
    client = served.rest.client()
    uploaded = client.beta.files.upload(file=("in.csv", b"1,2\n", "text/csv"))
    session = create_session(served.rest)
    for mount_path in ("relative/x", "/workspace/x.csv", "/data/../etc/passwd", "/proc/x"):
        with pytest.raises(anthropic.BadRequestError) as bad:
            client.beta.sessions.resources.add(session["id"], type="file", file_id=uploaded.id, mount_path=mount_path)
        assert "mount_path" in str(bad.value)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.add(session["id"], type="file", file_id=UNKNOWN_FILE)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.add("sesn_01JD7Y3Q4K2W8T6X0V5N9R1M3P", type="file", file_id=uploaded.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.resources.retrieve("sesrsc_01JD7Y3Q4K2W8T6X0V5N9R1M3P", session_id=session["id"])
    client.beta.sessions.resources.add(session["id"], type="file", file_id=uploaded.id, mount_path="/data/a")
    with pytest.raises(anthropic.BadRequestError) as twice:
        client.beta.sessions.resources.add(session["id"], type="file", file_id=uploaded.id, mount_path="/data/a")
    assert "same mount_path" in str(twice.value)
    assert len(list(client.beta.sessions.resources.list(session["id"]))) == 1


@pytest.mark.anyio
async def test_files_and_resources_through_the_async_sdk(served: Served) -> None:
    async with served.rest.async_client() as client:
        await _files_and_resources(served, client)


async def _files_and_resources(served: Served, client: anthropic.AsyncAnthropic) -> None:
    uploaded = await client.beta.files.upload(file=("notes.txt", b"hello", "text/plain"))
    assert (await client.beta.files.retrieve_metadata(uploaded.id)).size_bytes == 5
    assert await (await client.beta.files.download(uploaded.id)).read() == b"hello"
    assert [f.id async for f in client.beta.files.list()] == [uploaded.id]
    with pytest.raises(anthropic.NotFoundError):
        await client.beta.files.retrieve_metadata(UNKNOWN_FILE)

    session = await call_tool(served.rest, "create_session", {})
    added = await client.beta.sessions.resources.add(session["id"], type="file", file_id=uploaded.id)
    assert [r.id async for r in client.beta.sessions.resources.list(session["id"])] == [added.id]
    with pytest.raises(anthropic.BadRequestError):
        await client.beta.sessions.resources.add(session["id"], type="file", file_id=uploaded.id, mount_path="x")
    await client.beta.sessions.resources.delete(added.id, session_id=session["id"])
    assert (await client.beta.files.delete(uploaded.id)).type == "file_deleted"


@pytest.mark.anyio
async def test_mcp_upload_file_takes_text_or_base64_within_its_limit(served: Served) -> None:
    text = await call_tool(served.rest, "upload_file", {"filename": "a.md", "content": "# hi"})
    assert text["id"].startswith("file_")
    assert (text["mime_type"], text["size_bytes"]) == ("text/markdown", 4)
    binary = await call_tool(served.rest, "upload_file", {"filename": "b.png", "content_base64": "iVBORw0K"})
    assert (binary["mime_type"], binary["size_bytes"]) == ("image/png", 6)
    async with mcp_client(served.rest) as client:
        both = await client.call_tool("upload_file", {"filename": "c", "content": "x", "content_base64": "eA=="})
        too_big = await client.call_tool("upload_file", {"filename": "c", "content": "x" * 524_289})
        session = await client.call_tool(
            "create_session", {"resources": [{"type": "file", "file_id": text["id"], "mount_path": "/data/a.md"}]}
        )
    assert both.is_error
    assert too_big.is_error
    assert not session.is_error
    assert session.structured_content is not None
    assert session.structured_content["resources"][0]["mount_path"] == "/data/a.md"
    with served.rest.client() as client:
        listed = [f.id for f in client.beta.files.list()]
    assert set(listed) == {text["id"], binary["id"]}
