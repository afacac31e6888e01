"""A real SecretService keyring for tests: a private D-Bus session with an unlocked gnome-keyring.

Nothing here is faked: secrets are stored encrypted by gnome-keyring under a
temporary XDG_DATA_HOME, exactly as on a Linux desktop.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

KEYRING_PASSWORD = "managed-sessions-test"


SECRETS_NAME = "org.freedesktop.secrets"
READY_WITHIN_S = 10.0  # bounds the wait for the daemon to own its bus name; it does within milliseconds
POLL_S = 0.02


@contextmanager
def secret_service(home: Path) -> Iterator[dict[str, str]]:
    """Starts dbus + gnome-keyring; yields the environment variables that reach them.

    Both get their own `HOME` and `XDG_RUNTIME_DIR` under `home`: gnome-keyring finds a running daemon through a
    control socket in `$XDG_RUNTIME_DIR/keyring`, so a shared one would hand this test's password to an earlier
    test's dying daemon. It returns once the daemon owns its name on the bus: `--unlock` forks and returns
    before that, and a call made in between would make D-Bus start a second, locked daemon of its own."""
    missing = [tool for tool in ("dbus-daemon", "dbus-send", "gnome-keyring-daemon") if shutil.which(tool) is None]
    if missing:
        raise FileNotFoundError(f"not installed: {', '.join(missing)} (apt-get install dbus gnome-keyring)")
    data_home = home / "xdg-data"
    data_home.mkdir(parents=True, exist_ok=True)
    private = {"HOME": home / "home", "XDG_RUNTIME_DIR": home / "run"}
    for path in private.values():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    surroundings = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    surroundings.update({key: str(path) for key, path in private.items()}, XDG_DATA_HOME=str(data_home))
    out = subprocess.run(
        ["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env=surroundings,
    ).stdout.split()
    address, dbus_pid = out[0], int(out[1])
    env = {"DBUS_SESSION_BUS_ADDRESS": address, "XDG_DATA_HOME": str(data_home)}
    try:
        subprocess.run(
            ["gnome-keyring-daemon", "--unlock", "--components=secrets"],
            input=KEYRING_PASSWORD,
            env={**surroundings, **env},
            text=True,
            check=True,
            capture_output=True,
            timeout=30,
        )
        _wait_for_owner(SECRETS_NAME, {**surroundings, **env})
        yield env
    finally:
        os.kill(dbus_pid, signal.SIGTERM)  # gnome-keyring-daemon exits with its bus


def _wait_for_owner(name: str, env: dict[str, str]) -> None:
    """Returns once `name` has an owner on the session bus `env` reaches (asking does not start one)."""
    ask = ["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus"]
    deadline = time.monotonic() + READY_WITHIN_S
    while True:
        reply = subprocess.run(
            [*ask, "org.freedesktop.DBus.NameHasOwner", f"string:{name}"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if reply.returncode == 0 and reply.stdout.strip().endswith("boolean true"):
            return
        if time.monotonic() > deadline:
            raise subprocess.CalledProcessError(1, "gnome-keyring-daemon", output=f"{name} has no owner")
        time.sleep(POLL_S)  # another process's state: there is nothing to wait on
