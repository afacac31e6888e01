"""The loopback HTTP plumbing both scripted model servers stand on; each keeps only its own API.

`model_server.py` (Anthropic Messages) and `chat_model_server.py` (OpenAI Chat Completions) differ in their wire
format, their script types and the checks they run on a request, and in nothing else. What they share lives here:

- `ScriptedServer`: a threaded HTTP/1.1 server on 127.0.0.1 for the length of a `with` block, which records each
  request (credential headers redacted), hands out the scripted turns in order and keeps the violations a test
  asserts are empty. A subclass names its API's request type, answers in `_serve` and words its own 500;
- `Exchange`: one response written by hand, so that a stream can pause, notice that the client hung up, or be cut
  off as a network failure cuts it. A subclass adds its API's frames;
- `ScriptedHang`: the bookkeeping of a turn that stalls until the test releases it, the client hangs up, its cap
  passes or the server closes.

Trust: it binds 127.0.0.1 only; a credential header is recorded by name, never by value.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import secrets
import select
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Generic, Literal, Protocol, Self, TypeAlias, TypeVar
from urllib.parse import urlsplit

from typing_extensions import override

__all__ = [
    "HANG_CAP_S",
    "POLL_S",
    "Exchange",
    "Handler",
    "HangOutcome",
    "JsonObject",
    "ScriptTurn",
    "ScriptedHang",
    "ScriptedServer",
]

HANG_CAP_S = 60.0  # a forgotten release fails the test within a minute instead of stalling the whole run
POLL_S = 0.02  # how often a hang looks at its release event, the client's socket and shutdown

HangOutcome = Literal["released", "disconnected", "capped", "shutdown"]
JsonObject = dict[str, Any]  # JSON as it enters from the wire


class _Recorded(Protocol):
    """What the plumbing reads of a recorded request; each API's `RecordedRequest` adds its own views."""

    @property
    def index(self) -> int: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...


class _ErrorAnswer(Protocol):
    """What the plumbing reads of a scripted error: its status and the retry headers the SDKs obey."""

    @property
    def status(self) -> int: ...
    @property
    def retry_after(self) -> float | None: ...
    @property
    def should_retry(self) -> bool | None: ...


RequestT = TypeVar("RequestT", bound=_Recorded)
AnswerT = TypeVar("AnswerT")
# A turn of the script: an answer, or a callable computing one from the request. Parameters: [AnswerT, RequestT].
ScriptTurn: TypeAlias = AnswerT | Callable[[RequestT], AnswerT]
NewRequest: TypeAlias = Callable[[int, str, str, str, dict[str, str], JsonObject], RequestT]


class ScriptedHang:
    """A turn that stalls mid-answer until `release()`, the client hangs up, `cap_s` passes or the server closes.

    This is the bookkeeping only; each API's `Hang` adds what is sent before the stall and after a release.
    """

    def __init__(self, *, cap_s: float, released: threading.Event) -> None:
        self.cap_s = cap_s
        self.released = released
        self.started = threading.Event()
        self.outcome: HangOutcome | None = None
        self._ended = threading.Event()

    def release(self) -> None:
        self.released.set()

    def wait_started(self, timeout_s: float = 5.0) -> None:
        """Blocks until the server is holding the answer back (its partial stream has been sent)."""
        if not self.started.wait(timeout_s):
            raise TimeoutError(f"the hang did not start within {timeout_s} s; did a request reach it?")

    def wait_ended(self, timeout_s: float = 5.0) -> HangOutcome:
        """Blocks until the hang is over; returns why it ended."""
        if not self._ended.wait(timeout_s):
            raise TimeoutError(f"the hang did not end within {timeout_s} s")
        assert self.outcome is not None
        return self.outcome

    def _end(self, outcome: HangOutcome) -> HangOutcome:
        self.outcome = outcome
        self._ended.set()
        return outcome


class Exchange:
    """One HTTP request and its response, written by hand so a stream can stop, pause and notice a hang-up.

    A subclass sets `request_id_header` (the header its API puts a request id in) and adds its stream's frames.
    """

    request_id_header: ClassVar[str]

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.gone = False

    def send_json(self, status: int, body: JsonObject, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self._head(status, {"content-type": "application/json", "content-length": str(len(data)), **(headers or {})})
        self._write(data)

    def send_error(self, answer: _ErrorAnswer, body: JsonObject) -> None:
        """Sends `body` with the answer's status and the `retry-after` and `x-should-retry` headers it asks for."""
        headers: dict[str, str] = {}
        if answer.retry_after is not None:
            headers["retry-after"] = f"{answer.retry_after:g}"
        if answer.should_retry is not None:
            headers["x-should-retry"] = str(answer.should_retry).lower()
        self.send_json(answer.status, body, headers)

    def start_stream(self) -> None:
        self._head(200, {"content-type": "text/event-stream; charset=utf-8", "transfer-encoding": "chunked"})

    def send_frame(self, data: str, *, event: str | None = None) -> None:
        """Sends one Server-Sent Event (`event:` only when named) as its own HTTP chunk."""
        named = f"event: {event}\n" if event is not None else ""
        frame = f"{named}data: {data}\n\n".encode()
        self._write(b"%x\r\n%s\r\n" % (len(frame), frame))

    def end_stream(self) -> None:
        self._write(b"0\r\n\r\n")

    def wait(self, job: ScriptedHang, closing: threading.Event) -> HangOutcome:
        """Holds the answer back until released, hung up on, capped or shut down; polls at `POLL_S`."""
        job.started.set()
        deadline = time.monotonic() + job.cap_s
        sock = self.handler.connection
        while not job.released.is_set():
            if closing.is_set():
                return job._end("shutdown")
            if time.monotonic() >= deadline:
                return job._end("capped")
            state = _socket_state(sock)
            if state == "closed":
                self.gone = True
                return job._end("shutdown" if closing.is_set() else "disconnected")  # close() drops sockets too
            if state == "data":  # the client sent bytes mid-response; wait on the release, not a spinning select
                job.released.wait(POLL_S)
        return job._end("released")

    def drop(self) -> None:
        """Closes the connection now, whatever was or was not sent: the client sees it end mid-response."""
        self._lost()
        with contextlib.suppress(OSError):
            self.handler.connection.shutdown(socket.SHUT_RDWR)

    def _head(self, status: int, headers: dict[str, str]) -> None:
        if self.gone:
            return
        try:
            self.handler.send_response(status)
            for name, value in {self.request_id_header: f"req_{secrets.token_hex(12)}", **headers}.items():
                self.handler.send_header(name, value)
            self.handler.end_headers()
        except OSError:
            self._lost()

    def _write(self, data: bytes) -> None:
        if self.gone:
            return
        try:
            self.handler.wfile.write(data)
            self.handler.wfile.flush()
        except OSError:
            self._lost()

    def _lost(self) -> None:
        self.gone = True
        self.handler.close_connection = True


def _socket_state(sock: socket.socket) -> Literal["idle", "closed", "data"]:
    """Waits up to `POLL_S` for the client's socket: a readable socket with nothing to read was closed."""
    try:
        readable, _, _ = select.select([sock], [], [], POLL_S)
        if not readable:
            return "idle"
        return "closed" if sock.recv(1, socket.MSG_PEEK) == b"" else "data"
    except (OSError, ValueError):
        return "closed"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked streams, as the real APIs
    # Headers and body go out as separate small writes: with Nagle on, the client's delayed ACK adds ~40 ms
    # to every answer, which would swamp what the benchmarks measure.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        self.server.owner._serve(self)

    def do_POST(self) -> None:
        self.server.owner._serve(self)

    @override
    def log_message(self, format: str, *args: Any) -> None:
        owner = self.server.owner
        owner._logger.debug("%s: %s", owner._name, format % args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: ScriptedServer[Any, Any]) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_changed = threading.Condition()
        super().__init__(("127.0.0.1", 0), Handler)

    @override
    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_changed:
            self.connections.add(request)
        super().process_request(request, client_address)

    @override
    def shutdown_request(self, request: Any) -> None:
        """Runs last on a connection's handler thread; once every one has run, no handler is left."""
        try:
            super().shutdown_request(request)
        finally:
            with self.connections_changed:
                self.connections.discard(request)
                self.connections_changed.notify_all()

    def drop_connections(self, timeout_s: float) -> None:
        """Ends every connection, idle keep-alive ones included, and waits for their handler threads to finish."""
        with self.connections_changed:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            if not self.connections_changed.wait_for(lambda: not self.connections, timeout_s):
                count = len(self.connections)
                self.owner._logger.warning("%s: %d connection(s) still open after close", self.owner._name, count)


class ScriptedServer(ABC, Generic[RequestT, AnswerT]):
    """A scripted API serving on 127.0.0.1 in a background thread while the context is open.

    A subclass sets `_name` (its thread's name and its log lines' prefix), `_secret_headers` (recorded as
    `<redacted>`) and the API's wording of a body that is not JSON (`_not_json`) or not an object
    (`_not_an_object`); it answers each request in `_serve` and words the 500 of a failed script in
    `_server_error`.
    """

    _name: ClassVar[str]
    _secret_headers: ClassVar[frozenset[str]]
    _not_json: ClassVar[str]
    _not_an_object: ClassVar[str]

    def __init__(self, turns: Iterable[ScriptTurn[AnswerT, RequestT]], new_request: NewRequest[RequestT]) -> None:
        self._turns: deque[ScriptTurn[AnswerT, RequestT]] = deque(turns)
        self._new_request = new_request
        self._requests: list[RequestT] = []
        self._violations: list[str] = []
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._logger = logging.getLogger(type(self).__module__)

    def __enter__(self) -> Self:
        self._httpd = _HTTPServer(self)
        serve = functools.partial(self._httpd.serve_forever, poll_interval=POLL_S)  # the default 0.5 s slows close()
        self._thread = threading.Thread(target=serve, name=self._name.replace(" ", "-"), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stops serving and waits for the handlers: a hang in progress ends with outcome `shutdown`."""
        self._closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.drop_connections(timeout_s=5)
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, f"enter the {type(self).__name__} context first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def enqueue(self, *turns: ScriptTurn[AnswerT, RequestT]) -> None:
        with self._changed:
            self._turns.extend(turns)

    @property
    def remaining(self) -> int:
        """Scripted turns not yet used."""
        with self._changed:
            return len(self._turns)

    @property
    def requests(self) -> list[RequestT]:
        with self._changed:
            return list(self._requests)

    @property
    def violations(self) -> list[str]:
        with self._changed:
            return list(self._violations)

    def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> list[RequestT]:
        """Blocks until at least `count` requests have arrived; returns them all."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= count, timeout_s):
                seen = [f"{r.method} {r.path}" for r in self._requests]
                raise TimeoutError(f"{len(seen)} of {count} requests arrived within {timeout_s} s: {seen}")
            return list(self._requests)

    # --- serving, on the handler threads ---

    @abstractmethod
    def _serve(self, handler: Handler) -> None:
        """Answers one request: `_record` it, then check it and answer it as the API would."""

    @abstractmethod
    def _server_error(self, message: str) -> AnswerT:
        """The API's 500 (not to be retried) that answers a script that ran out or whose callable raised."""

    def _record(self, handler: Handler) -> tuple[RequestT, str | None]:
        """Reads the request and adds it to `requests`; returns it with what is wrong with its body, if anything."""
        url = urlsplit(handler.path)
        secret = self._secret_headers
        headers = {k.lower(): ("<redacted>" if k.lower() in secret else v) for k, v in handler.headers.items()}
        body, problem = self._parse_body(handler.rfile.read(int(handler.headers.get("content-length") or 0)))
        with self._changed:
            request = self._new_request(len(self._requests), handler.command, url.path, url.query, headers, body)
            self._requests.append(request)
            self._changed.notify_all()
        return request, problem

    def _parse_body(self, raw: bytes) -> tuple[JsonObject, str | None]:
        body: Any = {}
        problem = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                problem = f"{self._not_json}: {exc}"
        if not isinstance(body, dict):
            return {}, self._not_an_object
        return body, problem

    def _violate(self, request: RequestT, message: str) -> None:
        with self._changed:
            self._violations.append(f"request #{request.index} ({request.method} {request.path}): {message}")

    def _next_answer(self, request: RequestT) -> AnswerT:
        """The next scripted turn's answer; a 500, recorded as a violation, when there is none or it fails."""
        with self._changed:
            turn = self._turns.popleft() if self._turns else None
        if turn is None:
            message = "the model script ran out: no turn was enqueued for this request; enqueue more turns"
            self._violate(request, message)
            return self._server_error(message)
        if not callable(turn):
            return turn
        try:
            return turn(request)
        except Exception as exc:  # noqa: BLE001 - the test's own callback failed: answer loudly, keep serving
            message = f"the scripted turn callable raised {exc!r}"
            self._violate(request, message)
            return self._server_error(message)
