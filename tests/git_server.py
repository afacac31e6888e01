"""A loopback smart-HTTP git server for tests: the real `git http-backend` behind a token check.

Each request runs `git http-backend` (the CGI git ships) as a child process, from a
`ThreadingHTTPServer` in a thread. The server wants HTTP Basic with the token as the password
(any user name), as GitHub, GitHub Enterprise and Gitea accept a token; it answers 401 with
`WWW-Authenticate: Basic` when the header is missing or wrong, 403 for repositories named
`forbidden`, and 404 for repositories that do not exist. Every request is recorded (method,
path, headers, body, status), so a test can count requests and check what was sent.

`make_repository` builds a bare repository with N files on `main` and a `feature` branch, and
`Repository.push_commit` adds a commit to it later (as another user pushing in between).
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

_GIT_EXEC_PATH = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
HTTP_BACKEND = str(Path(_GIT_EXEC_PATH) / "git-http-backend")
"""git's own smart-HTTP CGI, wherever this git keeps its helpers."""
AUTHOR = ["-c", "user.name=Test Author", "-c", "user.email=author@example.invalid", "-c", "commit.gpgsign=false"]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class GitServer:
    """A running server: where it listens, what it accepts, and every request it saw."""

    root: Path
    token: str
    port: int = 0
    forbidden: frozenset[str] = frozenset({"forbidden"})
    public: frozenset[str] = frozenset()
    requests: list[Recorded] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, entry: Recorded) -> None:
        with self._lock:
            self.requests.append(entry)

    def taken(self) -> list[Recorded]:
        """The requests recorded so far, and a fresh record from now on."""
        with self._lock:
            taken, self.requests = self.requests, []
        return taken

    def authorized(self, header: str | None) -> bool:
        if header is None or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header.removeprefix("Basic "), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        return decoded.partition(":")[2] == self.token


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length", "0") or 0))


def _cgi_env(server: GitServer, handler: BaseHTTPRequestHandler, path: str, query: str, body: bytes) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(server.root),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_PROJECT_ROOT": str(server.root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "REQUEST_METHOD": handler.command,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "127.0.0.1",
    }
    for header, name in (
        ("Content-Type", "CONTENT_TYPE"),
        ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
        ("Git-Protocol", "GIT_PROTOCOL"),
    ):
        if handler.headers.get(header):
            env[name] = handler.headers[header]
    return env


def _parse_cgi(output: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """A CGI answer: its status, its headers and its body."""
    head, blank, payload = output.partition(b"\r\n\r\n")
    if not blank:
        head, _, payload = output.partition(b"\n\n")
    status, headers = 200, []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.split()[0])
        else:
            headers.append((name, value.strip()))
    return status, headers, payload


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: list[tuple[str, str]]) -> int:
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
    return status


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    git: GitServer  # set on the subclass each server makes

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        pass  # the record is the log

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        body = _read_body(self)
        status = self._answer(parts.path, parts.query, body)
        self.git.record(Recorded(self.command, parts.path, parts.query, dict(self.headers.items()), body, status))

    def _answer(self, path: str, query: str, body: bytes) -> int:
        repo = path.strip("/").split("/")[0].removesuffix(".git")
        text = [("Content-Type", "text/plain")]
        if repo not in self.git.public and not self.git.authorized(self.headers.get("Authorization")):
            return _send(self, 401, b"authentication required\n", [*text, ("WWW-Authenticate", 'Basic realm="test"')])
        if repo in self.git.forbidden:
            return _send(self, 403, b"forbidden\n", text)
        if not (self.git.root / f"{repo}.git").is_dir():
            return _send(self, 404, b"not found\n", text)
        env = _cgi_env(self.git, self, path, query, body)
        done = subprocess.run([HTTP_BACKEND], input=body, capture_output=True, env=env)
        status, headers, payload = _parse_cgi(done.stdout)
        return _send(self, status, payload, headers)


@contextmanager
def git_server(root: Path, token: str, public: frozenset[str] = frozenset()) -> Iterator[GitServer]:
    """Serves the bare repositories `root/<name>.git` on a free loopback port until the block ends."""
    server = GitServer(root=root, token=token, public=public)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"git": server}))
    httpd.daemon_threads = True
    server.port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, name="git-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def git(*args: str, cwd: Path | None = None) -> str:
    """Runs git isolated from the user's configuration; returns stdout."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd or Path.cwd()),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "LC_ALL": "C",
    }
    done = subprocess.run(["git", *AUTHOR, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


@dataclass
class Repository:
    """A bare repository the server serves, and the work tree its commits are made in."""

    name: str
    bare: Path
    work: Path
    main_commits: list[str]
    feature_commit: str

    def push_commit(self, path: str, text: str, branch: str = "main") -> str:
        """Commits one file on `branch` and pushes it to the served repository; returns the commit."""
        git("checkout", "-q", branch, cwd=self.work)
        (self.work / path).parent.mkdir(parents=True, exist_ok=True)
        (self.work / path).write_text(text, encoding="utf-8")
        git("add", path, cwd=self.work)
        git("commit", "-q", "-m", f"change {path}", cwd=self.work)
        git("push", "-q", str(self.bare), branch, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


def make_repository(root: Path, name: str, files: int = 10) -> Repository:
    """A bare `root/<name>.git`: `files` files on `main` in two commits, and a `feature` branch one commit ahead.

    Files are `src/dir<k>/file<i>.txt` (100 per directory) holding `file <i>`, plus `README.md`.
    """
    work = root.parent / f"{root.name}-work-{name}"
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=work)
    (work / "README.md").write_text(f"# {name}\n", encoding="utf-8")
    git("add", "README.md", cwd=work)
    git("commit", "-q", "-m", "first", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    for i in range(files):
        path = work / "src" / f"dir{i // 100}" / f"file{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file {i}\n", encoding="utf-8")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", f"{files} files", cwd=work)
    second = git("rev-parse", "HEAD", cwd=work)
    git("checkout", "-q", "-b", "feature", cwd=work)
    (work / "FEATURE.md").write_text("only on feature\n", encoding="utf-8")
    git("add", "FEATURE.md", cwd=work)
    git("commit", "-q", "-m", "feature", cwd=work)
    feature = git("rev-parse", "HEAD", cwd=work)
    git("checkout", "-q", "main", cwd=work)
    root.mkdir(parents=True, exist_ok=True)
    bare = root / f"{name}.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=root)
    return Repository(name, bare, work, [first, second], feature)
