"""Where the HTTP server that holds a data dir listens, so that the CLI on the same host can find it.

`serve --transport http` writes `server.url` (its URL and pid) beside `server.lock` and removes it on a clean
exit. A reader trusts the file only while the pid in it is alive and is the one `server.lock` names: a server
killed with `kill -9` leaves the file behind, and the next server (on stdio, say) rewrites the lock's pid. The
reader never takes the lock, so it never stands in a server's way.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["URL_FILE", "announce_url", "announced_url", "local_url"]

URL_FILE = "server.url"


def local_url(host: str, port: int) -> str:
    """The URL a client on this host reaches a server bound to `host` at (a wildcard bind: loopback)."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - reading a bind address, not binding
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


@contextmanager
def announce_url(data_dir: Path, url: str) -> Iterator[None]:
    """Records `url` as this process's for the duration (call while holding the data dir's lock)."""
    path = data_dir / URL_FILE
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps({"url": url, "pid": os.getpid()}), encoding="utf-8")
    scratch.replace(path)  # a reader sees the old file or the new one, never half of one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def announced_url(data_dir: Path) -> str | None:
    """The URL of the HTTP server holding `data_dir` now, or None (none runs, or it serves stdio)."""
    try:
        record = json.loads((data_dir / URL_FILE).read_text(encoding="utf-8"))
        holder = (data_dir / "server.lock").read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    url, pid = record.get("url"), record.get("pid")
    if not isinstance(url, str) or not isinstance(pid, int) or str(pid) != holder or not _alive(pid):
        return None
    return url


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True
