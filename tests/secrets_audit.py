"""Looking for secret values where they must never be: files, streams, a container's whole filesystem."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path

import docker

__all__ = ["container_holds", "forms_of", "stream_holds", "tree_holds"]


def forms_of(secret: str) -> list[bytes]:
    """The shapes a secret leaks in: itself, its base64, and git's Basic credential."""
    raw = secret.encode()
    return [raw, base64.b64encode(raw), base64.b64encode(b"x-access-token:" + raw)]


def stream_holds(chunks: Iterable[bytes], needles: list[bytes]) -> set[bytes]:
    """The needles found in a stream of chunks (matches across chunk borders count)."""
    found: set[bytes] = set()
    keep = max(len(n) for n in needles)
    tail = b""
    for chunk in chunks:
        window = tail + chunk
        found |= {n for n in needles if n in window}
        tail = window[-keep:]
    return found


def tree_holds(root: Path, needles: list[bytes]) -> dict[str, set[bytes]]:
    """The needles found in every regular file under `root`, by path."""
    hits: dict[str, set[bytes]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found = stream_holds([path.read_bytes()], needles)
            if found:
                hits[str(path)] = found
    return hits


def container_holds(client: docker.DockerClient, container_id: str, needles: list[bytes]) -> set[bytes]:
    """The needles found in the container's whole filesystem: its export plus its two volumes."""
    container = client.containers.get(container_id)
    streams = [client.api.export(container_id)]
    streams += [container.get_archive(path)[0] for path in ("/workspace", "/mnt/session/outputs")]
    found: set[bytes] = set()
    for stream in streams:
        found |= stream_holds(stream, needles)
    return found
