"""A real SecretService keyring for tests: a private D-Bus session with an unlocked gnome-keyring.

Nothing here is faked: secrets are stored encrypted by gnome-keyring under a
temporary XDG_DATA_HOME, exactly as on a Linux desktop.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

KEYRING_PASSWORD = "managed-sessions-test"


@contextmanager
def secret_service(home: Path) -> Iterator[dict[str, str]]:
    """Starts dbus + gnome-keyring; yields the environment variables that reach them."""
    missing = [tool for tool in ("dbus-daemon", "gnome-keyring-daemon") if shutil.which(tool) is None]
    if missing:
        raise FileNotFoundError(f"not installed: {', '.join(missing)} (apt-get install dbus gnome-keyring)")
    data_home = home / "xdg-data"
    data_home.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        ["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    address, dbus_pid = out[0], int(out[1])
    env = {"DBUS_SESSION_BUS_ADDRESS": address, "XDG_DATA_HOME": str(data_home)}
    try:
        subprocess.run(
            ["gnome-keyring-daemon", "--unlock", "--components=secrets"],
            input=KEYRING_PASSWORD,
            env={**os.environ, **env},
            text=True,
            check=True,
            capture_output=True,
            timeout=30,
        )
        yield env
    finally:
        os.kill(dbus_pid, signal.SIGTERM)  # gnome-keyring-daemon exits with its bus
