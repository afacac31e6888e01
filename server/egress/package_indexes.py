"""The package indexes `allow_package_managers` opens: those this machine's pip, npm and apt are set up to use,
plus the registries pip and npm use by default (asked of the installed pip and npm, see `default_registries`).

A team that mirrors PyPI or npm internally configures the mirror once, on the server's machine; a `limited`
sandbox should then reach that mirror without anyone listing it in every environment. So the server reads, once at
start, the same configuration the package managers read, and keeps only the hosts (and non-default ports): never
paths, credentials or whole URLs, which index URLs often carry (`https://user:token@host/simple`). Anything it
cannot read or parse is skipped and logged at debug level by source only, since a broken file elsewhere on the
machine must not stop the server; `file://` and other non-HTTP sources need no network and are skipped too.
"""

from __future__ import annotations

import configparser
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from server.core.host_entries import check_host_entry

__all__ = ["default_registries", "package_index_hosts"]

logger = logging.getLogger(__name__)

_ASK_PIP = (
    "from pip._internal.models.index import PyPI; print(PyPI.simple_url); print('https://' + PyPI.file_storage_domain)"
)
_ASK_TIMEOUT_S = 20.0

_PIP_SECTIONS = ("global", "install", "download")
_PIP_KEYS = ("index-url", "extra-index-url")
_NPM_REGISTRY_KEY = re.compile(r"^(?:@[^:\s]+:)?registry$")
_NPM_ENV_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def package_index_hosts(
    environ: Mapping[str, str], home: Path, etc: Path = Path("/etc"), defaults: Iterable[str] = ()
) -> tuple[str, ...]:
    """Host entries (`host` or `host:port`) of the configured package indexes, then of `defaults` (URLs, see
    `default_registries`); each once.

    `etc` stands for `/etc` (tests pass a temporary one); npm's `/usr/etc/npmrc` is looked up beside it."""
    sources = [*_pip_urls(environ, home, etc), *_npm_urls(environ, home, etc), *_apt_urls(etc)]
    sources += [("the package managers' defaults", url) for url in defaults]
    return tuple(dict.fromkeys(entry for source, url in sources if (entry := _host_entry(source, url)) is not None))


def default_registries(environ: Mapping[str, str]) -> list[str]:
    """The public registries pip and npm use when nothing is configured, as URLs, asked of the copies installed on
    this machine (this project names no registry itself); one that is not installed gives none. Blocking: it runs
    them (well under a second), so call it once, off the event loop."""
    urls: list[str] = []
    for python in _pythons(environ):
        answer = _ask([python, "-c", _ASK_PIP], environ)
        if answer:
            urls += answer
            break
    npm = shutil.which("npm", path=environ.get("PATH"))
    if npm is not None:
        urls += _ask([npm, "config", "get", "registry"], environ)
    return urls


def _pythons(environ: Mapping[str, str]) -> list[str]:
    """This interpreter, then every `python3` on PATH, each once: the server's own environment (made by uv, say)
    often has no pip while the system's Python does."""
    found = [sys.executable]
    for folder in environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = shutil.which("python3", path=folder) if folder else None
        if candidate is not None:
            found.append(candidate)
    unique: dict[str, str] = {}
    for path in found:
        unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def _ask(argv: list[str], environ: Mapping[str, str]) -> list[str]:
    """The lines a package manager printed (its default URLs), or none when it is missing or fails (logged)."""
    try:
        done = subprocess.run(  # noqa: S603 (argv is a package manager and a fixed question)
            argv, capture_output=True, text=True, timeout=_ASK_TIMEOUT_S, env=dict(environ), check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.debug("package indexes: could not ask %s for its default registry: %s", argv[0], exc)
        return []
    if done.returncode != 0:
        logger.debug("package indexes: %s could not say its default registry (exit %d)", argv[0], done.returncode)
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip().startswith(("http://", "https://"))]


def _host_entry(source: str, url: str) -> str | None:
    """`url`'s host and non-default port as an `allowed_hosts` entry; None (logged) when it has none to give."""
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        logger.debug("package indexes: skipped an unparsable URL in %s", source)
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not host:
        logger.debug("package indexes: skipped a %r source in %s (not HTTP)", parts.scheme, source)
        return None
    literal = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[parts.scheme.lower()]:
        literal += f":{port}"
    try:
        return check_host_entry(literal)
    except ValueError:
        logger.debug("package indexes: skipped an index in %s whose host is not a valid name", source)
        return None


def _read(path: Path) -> str | None:
    """A configuration file's text, or None when it is absent or unreadable (logged)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        logger.debug("package indexes: could not read %s: %s", path, exc)
        return None


# pip ---------------------------------------------------------------------------------------------------------


def _pip_urls(environ: Mapping[str, str], home: Path, etc: Path) -> Iterator[tuple[str, str]]:
    """(source, URL) of pip's indexes: its environment variables and every configuration file it would read."""
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        for url in environ.get(name, "").split():
            yield name, url
    for path in _pip_files(environ, home, etc):
        yield from _pip_file_urls(path)


def _pip_files(environ: Mapping[str, str], home: Path, etc: Path) -> list[Path]:
    own = environ.get("PIP_CONFIG_FILE")
    if own == os.devnull:
        return []  # pip's documented way to load no configuration file at all
    user_config = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    files = [etc / "pip.conf", etc / "xdg/pip/pip.conf", user_config / "pip/pip.conf", home / ".pip/pip.conf"]
    return [*files, Path(own)] if own else files


def _pip_file_urls(path: Path) -> Iterator[tuple[str, str]]:
    text = _read(path)
    if text is None:
        return
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error:
        logger.debug("package indexes: %s is not a configuration file pip can read", path)
        return
    for section in _PIP_SECTIONS:
        if not parser.has_section(section):
            continue
        for key, value in parser.items(section):
            if key.replace("_", "-") in _PIP_KEYS:  # pip reads index_url as index-url
                for url in value.split():
                    yield str(path), url


# npm ---------------------------------------------------------------------------------------------------------


def _npm_urls(environ: Mapping[str, str], home: Path, etc: Path) -> Iterator[tuple[str, str]]:
    """(source, URL) of npm's registries: `registry` and `@scope:registry`, from the environment and npmrc files."""
    lowered = {key.lower(): value for key, value in environ.items()}
    for key, value in lowered.items():
        if key.startswith("npm_config_") and _NPM_REGISTRY_KEY.match(key.removeprefix("npm_config_")):
            yield key, value
    user = Path(lowered.get("npm_config_userconfig") or home / ".npmrc")
    global_files = [Path(lowered["npm_config_globalconfig"])] if "npm_config_globalconfig" in lowered else []
    for path in [user, *global_files, etc / "npmrc", etc.parent / "usr/etc/npmrc"]:
        text = _read(path)
        if text is not None:
            yield from ((str(path), url) for url in _npmrc_registries(text, environ, path))


def _npmrc_registries(text: str, environ: Mapping[str, str], path: Path) -> Iterator[str]:
    """The registry URLs of one npmrc (ini lines; `${VAR}` expands from the environment, as npm does)."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;[" or "=" not in stripped:
            continue
        key, value = (part.strip() for part in stripped.split("=", 1))
        if not _NPM_REGISTRY_KEY.match(key):
            continue
        value = value.strip("'\"")
        missing = [name for name in _NPM_ENV_REFERENCE.findall(value) if name not in environ]
        if missing:
            logger.debug("package indexes: a registry in %s names unset variables %s", path, missing)
            continue
        yield _NPM_ENV_REFERENCE.sub(lambda match: environ[match.group(1)], value)


# apt ---------------------------------------------------------------------------------------------------------


def _apt_urls(etc: Path) -> Iterator[tuple[str, str]]:
    """(source, URL) of apt's sources: sources.list and sources.list.d's `*.list` (one-line) and `*.sources`
    (deb822); apt ignores other names there (`.disabled`, `.save`, ...), and so does this."""
    apt = etc / "apt"
    parts = apt / "sources.list.d"
    one_line = [apt / "sources.list", *sorted(parts.glob("*.list"))]
    for path in one_line:
        text = _read(path)
        if text is not None:
            yield from ((str(path), url) for url in _one_line_uris(text))
    for path in sorted(parts.glob("*.sources")):
        text = _read(path)
        if text is not None:
            yield from ((str(path), url) for url in _deb822_uris(text))


def _one_line_uris(text: str) -> Iterator[str]:
    """`deb [options] uri suite [components]` lines; options in brackets may hold spaces."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2 or words[0] not in ("deb", "deb-src"):
            continue
        rest = words[1:]
        if rest[0].startswith("["):
            closing = next((i for i, word in enumerate(rest) if word.endswith("]")), len(rest) - 1)
            rest = rest[closing + 1 :]
        if rest:
            yield rest[0]


def _deb822_uris(text: str) -> Iterator[str]:
    """The `URIs:` of each enabled stanza (stanzas are separated by blank lines; `Enabled: no` turns one off)."""
    for stanza in re.split(r"\n[ \t]*\n", text):
        fields = _deb822_fields(stanza)
        if fields.get("enabled", "yes").strip().lower() == "no":
            continue
        yield from fields.get("uris", "").split()


def _deb822_fields(stanza: str) -> dict[str, str]:
    """`Key: value` fields, lower-cased keys; continuation lines (leading space) join the previous field."""
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0] in " \t" and key is not None:
            fields[key] += " " + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            key = name.strip().lower()
            fields[key] = value.strip()
    return fields
