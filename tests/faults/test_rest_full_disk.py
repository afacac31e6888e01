"""The REST front on a full disk: an upload or a write the disk refuses answers a 500 that says the disk is full
and what to do, keeps nothing of the refused write, and the server answers throughout (reads keep working)."""

from __future__ import annotations

import io
from pathlib import Path

import anthropic
import pytest
from fake_sandboxes import FakeSandboxes
from rest_serving import rest_server
from small_disk import SmallDisk

from server.core.config import DEFAULT_IMAGE, ServerConfig
from vault.memory_store import MemoryStore


def create_agents_until_refused(client: anthropic.Anthropic) -> None:
    """Creates agents until one is refused: the store's WAL may take a few small commits before it needs a block."""
    for index in range(200):
        client.beta.agents.create(name=f"agent {index} " + "x" * 200, model="claude-test")


def test_uploads_and_writes_on_a_full_disk_are_refused_cleanly_and_work_again_once_freed(
    small_disk: SmallDisk,
) -> None:
    data_dir = small_disk.path / "data"
    data_dir.mkdir()
    config = ServerConfig(data_dir=data_dir, image=DEFAULT_IMAGE, model="claude-test")
    with rest_server(config, sandboxes=lambda _tg: FakeSandboxes(), secrets=MemoryStore()) as server:
        client = server.client()
        kept = client.beta.files.upload(file=("kept.bin", io.BytesIO(b"k" * 1024 * 1024), "application/octet-stream"))

        small_disk.fill()
        with pytest.raises(anthropic.InternalServerError) as refused:
            client.beta.files.upload(file=("big.bin", io.BytesIO(b"x" * 4 * 1024 * 1024), "application/octet-stream"))
        assert "its disk is full. Free space on that disk, then retry" in str(refused.value)
        with pytest.raises(anthropic.InternalServerError, match="disk is full"):
            create_agents_until_refused(client)
        # Reads keep working; nothing of the refused upload is kept or listed.
        assert [f.id for f in client.beta.files.list()] == [kept.id]
        assert list(Path(data_dir / "files" / "incoming").iterdir()) == []

        small_disk.free()
        again = client.beta.files.upload(file=("again.bin", io.BytesIO(b"a" * 1024), "application/octet-stream"))
        assert client.beta.files.retrieve_metadata(again.id).size_bytes == 1024
