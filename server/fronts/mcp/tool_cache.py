"""The tool list's schemas, kept between starts: made once per version of the code that makes them.

Making the 34 tools' input schemas, argument models and output schemas was most of building the MCP server,
about 70 ms of every stdio start (issue 14), and the answer only changes with the code or the libraries. So a
start that finds `<data_dir>/cache/mcp-tools.json` written under the same fingerprint takes each tool's published
schemas from it, and makes the tool's argument and output models on its first call instead (`registry.py`).

The fingerprint is that of Python's own bytecode cache, the size and modification time of a source file: those
of every `.py` file of this server's packages (`server`, `vault`), and of the `__init__.py` of each library that
makes the schemas (mcp, pydantic; an upgrade rewrites it), plus the Python version. It does not depend on which
modules happen to be loaded, so a stdio server and an HTTP one on the same data dir share the cache.

A cache that is missing, unreadable, stale, malformed or for other tools is ignored and rewritten; one that
cannot be written (a read-only or full data dir) is logged at debug level and the server starts as before.
Nothing in it is trusted beyond the published schemas: every call is still validated by the models the
functions declare.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CachedTool", "ToolCache"]

logger = logging.getLogger(__name__)

FORMAT = 1
_OWN_PACKAGES = ("server", "vault")
_LIBRARIES = ("mcp", "mcp_types", "pydantic", "pydantic_core")


@dataclass(frozen=True)
class CachedTool:
    """What a tool publishes that takes time to make, and the one fact of its signature the SDK must know."""

    parameters: dict[str, Any]
    output_schema: dict[str, Any]
    context_kwarg: str | None

    def to_json(self) -> dict[str, Any]:
        return {"parameters": self.parameters, "output_schema": self.output_schema, "context_kwarg": self.context_kwarg}

    @classmethod
    def from_json(cls, raw: object) -> CachedTool | None:
        """The entry, or None when it is not the shape this version writes."""
        if not isinstance(raw, dict):
            return None
        parameters, output, context = raw.get("parameters"), raw.get("output_schema"), raw.get("context_kwarg")
        if not isinstance(parameters, dict) or not isinstance(output, dict):
            return None
        if context is not None and not isinstance(context, str):
            return None
        return cls(parameters, output, context)


class ToolCache:
    """Read once when the server is built, written once after, if anything was made rather than read."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fingerprint = fingerprint()
        self._found = self._read()
        self._made: dict[str, CachedTool] = {}
        self._used: set[str] = set()

    def get(self, name: str) -> CachedTool | None:
        found = self._found.get(name)
        if found is not None:
            self._used.add(name)
        return found

    def put(self, name: str, tool: CachedTool) -> None:
        self._made[name] = tool

    @property
    def complete(self) -> bool:
        """Every tool came from the cache, and the cache holds no tool that is gone."""
        return not self._made and self._used == set(self._found)

    def save(self) -> None:
        """Writes what was read and made, unless that is exactly what the file holds (atomic; errors logged)."""
        if self.complete:
            return
        tools = {name: self._found[name] for name in self._used} | self._made
        entries = {name: tool.to_json() for name, tool in tools.items()}
        payload = {"format": FORMAT, "fingerprint": self._fingerprint, "tools": entries}
        partial = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(payload, separators=(",", ":")), encoding="utf-8")
            os.replace(partial, self._path)
        except OSError as exc:
            logger.debug("could not write the tool cache %s: %s", self._path, exc)
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)

    def _read(self) -> dict[str, CachedTool]:
        try:
            raw = json.loads(self._path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.debug("ignoring the tool cache %s: %s", self._path, exc)
            return {}
        if not isinstance(raw, dict) or raw.get("format") != FORMAT or raw.get("fingerprint") != self._fingerprint:
            return {}
        entries = raw.get("tools")
        if not isinstance(entries, dict):
            return {}
        found = {name: CachedTool.from_json(entry) for name, entry in entries.items()}
        return {name: tool for name, tool in found.items() if tool is not None}


def fingerprint(source_dirs: Sequence[Path] | None = None) -> str:
    """The Python version, and the size and mtime of every `.py` file under `source_dirs` (default: the `server`
    and `vault` packages) and of each schema-making library's `__init__.py`."""
    digest = hashlib.blake2b(sys.version.encode(), digest_size=16)
    for root in source_dirs if source_dirs is not None else _package_dirs(_OWN_PACKAGES):
        prefix = len(str(root)) + 1  # the paths below `root`, relative to it (`os.path.relpath` took 1 ms more)
        for path, size, mtime_ns in sorted(_sources(root)):
            digest.update(f"{path[prefix:]}:{size}:{mtime_ns};".encode())
    for name in _LIBRARIES:
        init = getattr(sys.modules.get(name), "__file__", None)
        if init is not None:
            stat = os.stat(init)
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def _package_dirs(names: Sequence[str]) -> list[Path]:
    found = (getattr(sys.modules.get(name), "__file__", None) for name in names)
    return [Path(path).parent for path in found if path is not None]


def _sources(root: Path) -> Iterator[tuple[str, int, int]]:
    """Every `.py` file below `root` (not `__pycache__`), with its size and mtime."""
    folders = [str(root)]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        folders.append(entry.path)
                elif entry.name.endswith(".py"):
                    stat = entry.stat()
                    yield entry.path, stat.st_size, stat.st_mtime_ns
