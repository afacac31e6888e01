"""The fault-injection tools checked against the real parts they break: the Docker engine behind a proxy that
can be cut, a small disk that can be filled, and a keyring whose daemons can be killed. Each test also pins down
what the fault looks like to the libraries the server uses, which is what the server has to handle."""

from __future__ import annotations

import errno
import io
import json
import os
import secrets
import socket
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors
import keyring
import keyring.errors
import pytest
import requests
import secretstorage.exceptions
from docker.models.containers import Container
from docker_proxy import DockerProxy
from keyring_daemon import KeyringDaemons
from processes import python_path_env
from small_disk import SmallDisk, mounted_small_disk

from server.core.config import DEFAULT_IMAGE
from vault.errors import KeyringUnavailableError
from vault.keyring_store import KEYRING_SERVICE, KeyringStore
from vault.secret import Secret

TEST_LABEL = {"io.managed-sessions.test": "fault-tools"}
GUARD_S = 30.0  # a hang guard for reads from the engine or the keyring; none comes near it


@pytest.fixture
def small_disk() -> Iterator[SmallDisk]:
    with mounted_small_disk(size_mib=16) as disk:
        yield disk


# --- the Docker proxy ------------------------------------------------------------------------------------------


@pytest.fixture
def proxy() -> Iterator[DockerProxy]:
    with DockerProxy() as started:
        yield started


@pytest.fixture
def proxied(docker_client: docker.DockerClient, proxy: DockerProxy) -> Iterator[docker.DockerClient]:
    """A Docker client that reaches the engine only through the proxy (`docker_client` skips without an engine)."""
    client = docker.DockerClient(base_url=proxy.url, timeout=120)
    yield client
    client.close()


@pytest.fixture
def sleeper(docker_client: docker.DockerClient) -> Iterator[Container]:
    """A running container made directly on the engine, which says "started" and then waits."""
    container = docker_client.containers.run(
        DEFAULT_IMAGE, ["sh", "-c", "echo started; exec sleep 600"], detach=True, network_mode="none", labels=TEST_LABEL
    )
    yield container
    container.remove(force=True)


def open_exec_stream(client: docker.DockerClient, container: Container, command: list[str]) -> socket.socket:
    """`docker exec -i` as hands/helper/channel.py opens it: a hijacked socket, duplicated, the SDK's objects closed."""
    exec_id = client.api.exec_create(container.id, command, stdin=True, stdout=True, stderr=True, tty=False)["Id"]
    hijacked: Any = client.api.exec_start(exec_id, socket=True)  # a SocketIO over a unix socket
    raw: socket.socket = hijacked._sock.dup()
    hijacked._response.close()
    hijacked.close()
    raw.settimeout(GUARD_S)
    return raw


def read_frames(sock: socket.socket, until: bytes | None = None) -> list[tuple[int, bytes]]:
    """Reads Docker's multiplexed frames (stream id, payload) until end of file, or until a payload ends `until`."""
    buffer, frames = b"", []
    while chunk := sock.recv(65536):
        buffer += chunk
        while len(buffer) >= 8 and len(buffer) >= 8 + struct.unpack(">I", buffer[4:8])[0]:
            size = struct.unpack(">I", buffer[4:8])[0]
            frames.append((buffer[0], buffer[8 : 8 + size]))
            buffer = buffer[8 + size :]
            if until is not None and frames[-1][1].endswith(until):
                return frames
    return frames


@pytest.mark.docker
def test_api_calls_go_through_the_proxy_on_connections_it_counts(
    proxied: docker.DockerClient, proxy: DockerProxy, sleeper: Container
) -> None:
    assert proxied.ping()
    listed = [c.id for c in proxied.containers.list(filters={"label": "io.managed-sessions.test"})]

    assert sleeper.id in listed
    assert proxy.accepted >= 1
    assert any("/containers/json" in line for line in proxy.requests)


@pytest.mark.docker
def test_a_hijacked_exec_stream_carries_stdin_to_stdout_and_its_half_close_through_the_proxy(
    proxied: docker.DockerClient, sleeper: Container
) -> None:
    stream = open_exec_stream(proxied, sleeper, ["cat"])
    try:
        stream.sendall(b"through the proxy\n")
        stream.shutdown(socket.SHUT_WR)  # cat sees end of input only if the half-close reaches the engine
        frames = read_frames(stream)
    finally:
        stream.close()

    assert frames == [(1, b"through the proxy\n")]


@pytest.mark.docker
def test_an_image_build_sends_its_context_and_streams_its_progress_through_the_proxy(
    proxied: docker.DockerClient, docker_client: docker.DockerClient
) -> None:
    tag = f"managed-sessions-test/docker-proxy:{secrets.token_hex(4)}"
    dockerfile = f"FROM {DEFAULT_IMAGE}\nRUN echo through-the-proxy > /tmp/built\n"
    try:
        _, progress = proxied.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True)
        built = docker_client.containers.run(tag, ["cat", "/tmp/built"], remove=True, network_mode="none")
    finally:
        docker_client.images.remove(tag, force=True)

    assert built == b"through-the-proxy\n"
    assert any(isinstance(line, dict) and "Successfully tagged" in str(line.get("stream")) for line in progress)


@pytest.mark.docker
def test_a_cut_ends_an_open_exec_stream_and_new_calls_are_refused_at_once(
    proxied: docker.DockerClient, proxy: DockerProxy, sleeper: Container
) -> None:
    stream = open_exec_stream(proxied, sleeper, ["cat"])
    try:
        stream.sendall(b"alive\n")
        before = read_frames(stream, until=b"alive\n")
        proxy.cut()
        after = stream.recv(65536)
    finally:
        stream.close()

    with pytest.raises(requests.exceptions.ConnectionError, match="Connection refused"):
        proxied.ping()
    with pytest.raises(docker.errors.DockerException, match="Connection refused"):
        docker.DockerClient(base_url=proxy.url)
    assert before == [(1, b"alive\n")]
    assert after == b""  # end of file, as when the engine goes away
    assert (proxy.state, proxy.open_connections) == ("cut", 0)


@pytest.mark.docker
def test_a_cut_with_the_socket_removed_fails_calls_with_file_not_found(
    proxied: docker.DockerClient, proxy: DockerProxy
) -> None:
    proxied.ping()

    proxy.cut(remove_path=True)

    assert not proxy.path.exists()
    with pytest.raises(requests.exceptions.ConnectionError, match="No such file or directory"):
        proxied.ping()


@pytest.mark.docker
def test_an_api_call_in_flight_fails_with_a_requests_error_when_the_proxy_is_cut(
    proxy: DockerProxy, docker_client: docker.DockerClient, sleeper: Container
) -> None:
    """`wait` blocks on the engine; cut under it, it fails (ChunkedEncodingError once headers came, else
    ConnectionError): both are `requests` errors, which are OSErrors and not `docker.errors.DockerException`."""
    client = docker.DockerClient(base_url=proxy.url, version="1.41")  # a pinned version: no request before `wait`
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.api.wait, str(sleeper.id))
        proxy.wait_for_request(f"/containers/{sleeper.id}/wait")
        proxy.cut()
        failure = waiting.exception(timeout=GUARD_S)
    client.close()
    sleeper.reload()

    assert isinstance(failure, requests.exceptions.RequestException)
    assert isinstance(failure, OSError)
    assert not isinstance(failure, docker.errors.DockerException)
    assert sleeper.status == "running"  # only the connection was cut, never the engine or the container


@pytest.mark.docker
def test_a_followed_log_stream_ends_quietly_without_an_error_when_the_proxy_is_cut(
    proxied: docker.DockerClient, proxy: DockerProxy, sleeper: Container
) -> None:
    """The SDK reads a cut stream as its normal end: a caller cannot tell it from the container stopping."""
    logs: Iterator[bytes] = proxied.containers.get(str(sleeper.id)).logs(stream=True, follow=True)
    first = next(logs)

    proxy.cut()

    assert first == b"started\n"
    assert list(logs) == []


@pytest.mark.docker
def test_a_restored_proxy_serves_the_same_client_again_on_a_new_connection(
    proxied: docker.DockerClient, proxy: DockerProxy
) -> None:
    proxied.ping()
    proxy.cut()
    with pytest.raises(requests.exceptions.ConnectionError):
        proxied.ping()
    seen = proxy.accepted  # a refused connection never reached the proxy

    proxy.restore()
    answered = proxied.ping()

    assert answered is True
    assert proxy.wait_for_accepted(seen + 1) == seen + 1
    assert proxy.state == "listening"


def test_a_proxy_whose_engine_is_gone_accepts_and_closes_so_the_sdk_sees_the_connection_aborted(
    tmp_path: Path,
) -> None:
    """The proxy's own upstream down (no engine at all): counted, and the client is hung up on."""
    with DockerProxy(upstream=str(tmp_path / "no-engine.sock")) as proxy:
        with pytest.raises(docker.errors.DockerException, match="Connection aborted"):
            docker.DockerClient(base_url=proxy.url)

        assert proxy.upstream_failures == proxy.accepted == 1
        assert proxy.open_connections == 0


# --- the small disk --------------------------------------------------------------------------------------------


def wal_database(path: Path) -> sqlite3.Connection:
    """A database set up as the store sets its own: WAL, synchronous=normal, transactions by hand."""
    db = sqlite3.connect(path, isolation_level=None)
    assert db.execute("pragma journal_mode = wal").fetchone() == ("wal",)
    db.execute("pragma synchronous = normal")
    db.execute("create table if not exists events (body blob)")
    return db


def insert_megabytes(db: sqlite3.Connection, megabytes: int) -> None:
    """Inserts that many megabytes of incompressible rows, in the caller's transaction."""
    for _ in range(megabytes * 10):
        db.execute("insert into events values (?)", (os.urandom(100_000),))


def test_a_filled_small_disk_refuses_new_blocks_until_it_is_freed(small_disk: SmallDisk) -> None:
    added = small_disk.fill()
    with pytest.raises(OSError) as raised:
        (small_disk.path / "more").write_bytes(b"x" * 4096)
    full = small_disk.free_bytes

    small_disk.free()
    (small_disk.path / "more").write_bytes(b"x" * 4096)

    assert raised.value.errno == errno.ENOSPC
    assert full == 0
    assert added > 15 * 1024 * 1024
    assert small_disk.free_bytes > 15 * 1024 * 1024


def test_a_sqlite_commit_on_a_full_disk_fails_with_sqlite_full_and_is_rolled_back_by_sqlite(
    small_disk: SmallDisk,
) -> None:
    """The COMMIT fails, and SQLite has already rolled the transaction back: a ROLLBACK after it would fail."""
    db = wal_database(small_disk.path / "store.db")
    try:
        db.execute("begin immediate")
        db.execute("insert into events values (?)", (b"before",))
        db.execute("commit")
        small_disk.fill()
        db.execute("begin immediate")
        db.execute("insert into events values (?)", (b"lost",))
        in_transaction_before_commit = db.in_transaction
        with pytest.raises(sqlite3.OperationalError) as raised:
            db.execute("commit")
        in_transaction_after = db.in_transaction
        rows_when_full = db.execute("select body from events").fetchall()

        small_disk.free()
        db.execute("begin immediate")
        db.execute("insert into events values (?)", (b"after",))
        db.execute("commit")
        rows_after_free = db.execute("select body from events").fetchall()
    finally:
        db.close()

    assert str(raised.value) == "database or disk is full"
    assert (raised.value.sqlite_errorcode, raised.value.sqlite_errorname) == (sqlite3.SQLITE_FULL, "SQLITE_FULL")
    assert (in_transaction_before_commit, in_transaction_after) == (True, False)
    assert rows_when_full == [(b"before",)]
    assert rows_after_free == [(b"before",), (b"after",)]


def test_a_statement_that_hits_a_full_disk_mid_transaction_ends_the_transaction_so_a_rollback_fails(
    small_disk: SmallDisk,
) -> None:
    """A transaction bigger than SQLite's page cache spills to the WAL before COMMIT and fails there; SQLite
    rolls back by itself, and the `except: rollback` a writer usually has raises "no transaction is active"."""
    db = wal_database(small_disk.path / "store.db")
    try:
        small_disk.fill()
        db.execute("begin immediate")
        with pytest.raises(sqlite3.OperationalError) as raised:
            insert_megabytes(db, 20)  # more than the default 2 MB page cache, more than the disk
        in_transaction = db.in_transaction
        with pytest.raises(sqlite3.OperationalError) as rollback:
            db.execute("rollback")
    finally:
        db.close()

    assert (str(raised.value), raised.value.sqlite_errorname) == ("database or disk is full", "SQLITE_FULL")
    assert in_transaction is False
    assert str(rollback.value) == "cannot rollback - no transaction is active"


def test_a_small_commit_can_still_succeed_on_a_full_disk_when_it_fits_in_the_checkpointed_wal(
    small_disk: SmallDisk,
) -> None:
    """After a checkpoint SQLite rewrites the WAL from its start, in blocks the file already has: filling the
    disk fails the commit that needs a new block, not necessarily the next one."""
    db = wal_database(small_disk.path / "store.db")
    try:
        for _ in range(20):
            db.execute("insert into events values (?)", (os.urandom(1000),))
        busy, wal_frames, checkpointed = db.execute("pragma wal_checkpoint(passive)").fetchone()
        small_disk.fill()
        db.execute("insert into events values (?)", (b"fits in the old WAL",))
        count = db.execute("select count(*) from events").fetchone()[0]
    finally:
        db.close()

    assert busy == 0
    assert wal_frames == checkpointed > 1
    assert count == 21


# --- the keyring -----------------------------------------------------------------------------------------------

READ_IN_A_FRESH_PROCESS = """
import json
from vault.keyring_store import KeyringStore, describe_backend
outcome = {"backend": describe_backend().name}
try:
    secret = KeyringStore("managed-sessions").get("cred")
    outcome["value"] = None if secret is None else secret.reveal()
except Exception as exc:
    outcome["raised"] = f"{type(exc).__module__}.{type(exc).__qualname__}"
    cause = exc.__cause__
    outcome["cause"] = None if cause is None else f"{type(cause).__module__}.{type(cause).__qualname__}: {cause}"
print(json.dumps(outcome))
"""


def read_in_a_fresh_process() -> dict[str, Any]:
    """`KeyringStore.get("cred")` from a new process, as a server started now would: it picks its backend anew."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", READ_IN_A_FRESH_PROCESS],
            env=python_path_env(dict(os.environ)),
            capture_output=True,
            text=True,
            check=True,
            timeout=GUARD_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"a keyring read hung for {GUARD_S} s")
    outcome: dict[str, Any] = json.loads(done.stdout)
    return outcome


@pytest.fixture
def keyring_daemons(daemons: KeyringDaemons) -> KeyringDaemons:
    """The fault suite's killable keyring (tests/faults/conftest.py), holding one secret."""
    KeyringStore(KEYRING_SERVICE).set(Secret("cred", "s3cret-value"))
    return daemons


@pytest.mark.keyring
def test_a_killed_keyring_daemon_comes_back_locked_through_dbus_so_reads_fail_as_unavailable_until_unlocked(
    keyring_daemons: KeyringDaemons,
) -> None:
    """D-Bus starts a new gnome-keyring-daemon on the next call; it cannot unlock the keyring without a person
    (no display: the prompt is dismissed), so keyring raises KeyringLocked, which the vault translates."""
    store = KeyringStore(KEYRING_SERVICE)
    killed = keyring_daemons.kill_secrets_daemon()

    with pytest.raises(KeyringUnavailableError, match="KeyringLocked") as raised:
        store.get("cred")
    restarted = keyring_daemons.secrets_daemon_pid()
    fresh = read_in_a_fresh_process()
    keyring_daemons.unlock_again()
    after_unlock = store.get("cred")

    assert isinstance(raised.value.__cause__, keyring.errors.KeyringLocked)
    assert restarted is not None
    assert restarted != killed
    assert fresh == {
        "backend": "keyring.backends.SecretService.Keyring",
        "raised": "vault.errors.KeyringUnavailableError",
        "cause": "keyring.errors.KeyringLocked: Failed to unlock the collection!",
    }
    assert after_unlock is not None
    assert after_unlock.reveal() == "s3cret-value"


@pytest.mark.keyring
def test_a_dead_session_bus_fails_reads_at_once_with_a_secretstorage_error_that_is_no_keyring_error(
    keyring_daemons: KeyringDaemons,
) -> None:
    """In a running process keyring keeps its SecretService backend, whose reads now raise secretstorage's own
    exception (not a `keyring.errors.KeyringError`); a process started now finds no backend at all."""
    keyring_daemons.kill_bus()

    with pytest.raises(secretstorage.exceptions.SecretServiceNotAvailableException) as raised:
        keyring.get_password(KEYRING_SERVICE, "cred")
    fresh = read_in_a_fresh_process()

    assert not isinstance(raised.value, keyring.errors.KeyringError)
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)
    assert fresh["backend"] == "keyring.backends.fail.Keyring"
    assert fresh["raised"] == "vault.errors.KeyringUnavailableError"
    assert fresh["cause"].startswith("keyring.errors.NoKeyringError: No recommended backend was available.")
