"""The test's own SecretService keyring, made to fail on purpose: its keyring daemon or its D-Bus killed.

It starts the keyring with `secret_service()` (the same private dbus-daemon + unlocked gnome-keyring as the
`keyring_env` fixture) and adds what a fault test needs:

- The D-Bus daemon gets the same `XDG_DATA_HOME` as the keyring, a private `HOME` and `XDG_RUNTIME_DIR`, and
  no `DISPLAY`, as under `dbus-run-session` on a server: when the keyring daemon dies, D-Bus starts a new one
  on the next call (`gnome-keyring-daemon --start --foreground`, from its service file), and that one finds
  the test's keyring on disk, locked. (`keyring_env` leaves the bus with the test's own environment, so a
  daemon started that way looks in `$HOME/.local/share/keyrings`, finds nothing and fails differently.)
- This process talks to it: `DBUS_SESSION_BUS_ADDRESS` is set and keyring's backend is SecretService (keyring
  decides which backends are viable once per process, so it is named), as in a running server.
- `kill_secrets_daemon()`, `kill_bus()` and `unlock_again()`; each returns once the fault (or the cure) is
  in place. Every daemon seen is ended afterwards, and a bus that was killed does not fail the teardown.

Example:
    def test_x(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        with killable_secret_service(tmp_path / "keyring", monkeypatch) as daemons:
            KeyringStore(KEYRING_SERVICE).set(Secret("cred", "value"))
            daemons.kill_secrets_daemon()
            ...  # a read now fails with KeyringUnavailableError (KeyringLocked)
            daemons.unlock_again()
            ...  # and works again
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import keyring
import keyring.backends.SecretService
import pytest
from secret_service import KEYRING_PASSWORD, secret_service

__all__ = ["SECRETS_NAME", "KeyringDaemons", "killable_secret_service"]

SECRETS_NAME = "org.freedesktop.secrets"
BUS_NAME = "org.freedesktop.DBus"
GUARD_S = 10.0  # bounds each wait for a process or a bus name to go; they go within milliseconds
POLL_S = 0.02
DBUS_SEND = ["dbus-send", "--session", "--print-reply", f"--dest={BUS_NAME}", "/org/freedesktop/DBus"]


@dataclass
class KeyringDaemons:
    """The running keyring: the environment reaching it and the processes behind it."""

    env: dict[str, str]
    bus_pid: int
    seen: set[int] = field(default_factory=set[int])

    def secrets_daemon_pid(self) -> int | None:
        """The process owning the SecretService name now, or None (asking does not start one)."""
        reply = self._bus_call("GetConnectionUnixProcessID", SECRETS_NAME)
        if reply is None:
            return None
        pid = int(reply.split()[-1])
        self.seen.add(pid)
        return pid

    def kill_secrets_daemon(self, sig: signal.Signals = signal.SIGKILL) -> int:
        """Kills gnome-keyring-daemon and waits until the bus has dropped its name; returns the pid killed."""
        pid = self.secrets_daemon_pid()
        assert pid is not None, "no keyring daemon is running"
        os.kill(pid, sig)
        _wait_until(lambda: self._bus_call("NameHasOwner", SECRETS_NAME) == "boolean false", f"{SECRETS_NAME} gone")
        return pid

    def kill_bus(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Kills the D-Bus daemon and waits until it is gone (its keyring daemon goes with it)."""
        os.kill(self.bus_pid, sig)
        _wait_until(lambda: not _alive(self.bus_pid), f"dbus-daemon {self.bus_pid} gone")

    def unlock_again(self) -> int:
        """What an operator does: replaces whatever keyring daemon runs with one unlocked by the password.

        Returns the new daemon's pid once it owns the SecretService name (`--daemonize` returns before that).
        """
        before = self.secrets_daemon_pid()
        subprocess.run(
            ["gnome-keyring-daemon", "--replace", "--unlock", "--components=secrets", "--daemonize"],
            input=KEYRING_PASSWORD,
            env={**os.environ, **self.env},
            text=True,
            check=True,
            capture_output=True,
            timeout=30,
        )
        _wait_until(lambda: self.secrets_daemon_pid() not in (None, before), f"a new daemon owns {SECRETS_NAME}")
        pid = self.secrets_daemon_pid()
        assert pid is not None
        return pid

    def end_all(self) -> None:
        """Ends every keyring daemon this object saw (the bus is the fixture's to end)."""
        with contextlib.suppress(OSError, subprocess.SubprocessError, AssertionError):
            self.secrets_daemon_pid()  # one started by D-Bus since the last look
        for pid in self.seen:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    def _bus_call(self, method: str, argument: str) -> str | None:
        """One call to the bus daemon itself; its reply's last line, or None when the call failed."""
        done = subprocess.run(
            [*DBUS_SEND, f"{BUS_NAME}.{method}", f"string:{argument}"],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return done.stdout.strip().splitlines()[-1].strip() if done.returncode == 0 else None


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for init to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD_S
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {GUARD_S} s: {what}")
        time.sleep(POLL_S)  # polls a state another process changes; there is nothing to wait on


@contextlib.contextmanager
def killable_secret_service(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyringDaemons]:
    """A private, unlocked SecretService that this process uses, and the means to kill its parts."""
    for name, path in {"HOME": home / "home", "XDG_RUNTIME_DIR": home / "run"}.items():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        monkeypatch.setenv(name, str(path))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg-data"))  # where secret_service() keeps the keyring
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)  # a prompt would wait for a person
    service = secret_service(home)
    env = service.__enter__()
    previous = keyring.get_keyring()
    daemons: KeyringDaemons | None = None
    try:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        keyring.set_keyring(keyring.backends.SecretService.Keyring())  # type: ignore[no-untyped-call]
        bus = KeyringDaemons(env, bus_pid=0)._bus_call("GetConnectionUnixProcessID", BUS_NAME)
        assert bus is not None, "the private D-Bus does not answer"
        daemons = KeyringDaemons(env, bus_pid=int(bus.split()[-1]))
        daemons.secrets_daemon_pid()
        yield daemons
    finally:
        keyring.set_keyring(previous)
        if daemons is not None:
            daemons.end_all()
        with contextlib.suppress(ProcessLookupError):  # the test killed the bus, and init reaped it
            service.__exit__(None, None, None)
