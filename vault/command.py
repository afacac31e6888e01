"""Dynamic secrets: a shell command the user chose (`gh auth token`) that prints the secret.

The command runs on the host with the server's environment, the way the user would run it.
Its stdout is the secret, so it never appears in an error; its exit status does, and so does
the last line of its stderr, after redaction (it usually says what is wrong, like "not
logged in").
"""

from __future__ import annotations

import subprocess

from vault.errors import VaultError
from vault.redactor import Redactor

__all__ = ["COMMAND_TIMEOUT_S", "run_secret_command"]

COMMAND_TIMEOUT_S = 30.0
"""Long enough for a CLI that refreshes a token over the network; short enough not to hang a session."""

_STDERR_SHOWN = 200


def run_secret_command(command: str, what: str, redactor: Redactor) -> str:
    """The command's stripped stdout; `what` names the credential in errors.

    Raises:
        VaultError: the command failed, timed out, or printed nothing.
    """
    try:
        result = subprocess.run(  # noqa: S602 - the user's own command line, run as they would run it
            command, shell=True, capture_output=True, timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False
        )
    except subprocess.TimeoutExpired:
        raise VaultError(f"the command of {what} did not finish within {COMMAND_TIMEOUT_S:.0f} s") from None
    except OSError as exc:
        raise VaultError(f"cannot run the command of {what}: {exc.strerror}") from None
    if result.returncode != 0:
        hint = _last_line(result.stderr, result.stdout, redactor)
        raise VaultError(
            f"the command of {what} exited with status {result.returncode}"
            + (f": {hint}" if hint else "")
            + "; run it yourself to see why, or re-add the credential"
        )
    value = result.stdout.decode(errors="replace").strip()
    if not value:
        raise VaultError(f"the command of {what} printed nothing on stdout")
    return value


def _last_line(stderr: bytes, stdout: bytes, redactor: Redactor) -> str:
    """The last stderr line, without any known secret or anything the failed run printed on stdout."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    if not lines:
        return ""
    line = redactor.redact(lines[-1])
    for printed in stdout.decode(errors="replace").split():
        if len(printed) >= 4:  # shorter words are not secrets, and replacing them would garble the line
            line = line.replace(printed, "[REDACTED]")
    return line[:_STDERR_SHOWN]
