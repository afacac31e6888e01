"""`managed-sessions vault ...` as a real child process against a real SecretService keyring.

The secret goes in through stdin, an environment variable or a command, never argv; it never
comes out on stdout or stderr; and it lives in the keyring only.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import subprocess
import termios
import time
from pathlib import Path

import keyring
import pytest
from processes import SERVER, python_path_env

from vault import KEYRING_SERVICE

SECRET = "ghp_CliSecret0123456789abcdefXYZ"
MCP_URL = "https://mcp.example.com/mcp"


def vault(args: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SERVER, "vault", *args],
        env=python_path_env(env),
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def env(subprocess_env: dict[str, str], real_keyring: dict[str, str]) -> dict[str, str]:
    return {**subprocess_env, **real_keyring}


def credential_id_of(env: dict[str, str], vault_name: str) -> str:
    shown = json.loads(ok(vault(["show", vault_name, "--json"], env)))
    assert len(shown["credentials"]) == 1
    return str(shown["credentials"][0]["id"])


def no_secret_on_disk(env: dict[str, str]) -> None:
    roots = [Path(env["MANAGED_SESSIONS_DATA_DIR"]), Path(env["XDG_DATA_HOME"])]
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.keyring
def test_a_secret_from_stdin_lands_in_the_keyring_and_show_and_list_print_metadata(env: dict[str, str]) -> None:
    created = ok(vault(["create", "work", "--metadata", "team=infra"], env))
    assert "created vault 'work' (vlt_" in created
    added = ok(vault(["add", "work", "--type", "static_bearer", "--match", MCP_URL + "/", "--stdin"], env, SECRET))
    assert f"for {MCP_URL} (keyring)" in added
    credential_id = credential_id_of(env, "work")
    assert keyring.get_password(KEYRING_SERVICE, credential_id) == SECRET

    listed = ok(vault(["list"], env))
    assert "work" in listed
    assert "1" in listed.splitlines()[1].split()
    shown = ok(vault(["show", "work"], env))
    assert credential_id in shown
    assert "static_bearer" in shown
    assert "team=infra" in shown
    no_secret_on_disk(env)


@pytest.mark.keyring
def test_without_a_source_flag_a_non_terminal_stdin_is_read(env: dict[str, str]) -> None:
    ok(vault(["create", "work"], env))
    ok(vault(["add", "work", "--type", "github_token", "--match", "GitHub.com"], env, SECRET + "\n"))
    credential_id = credential_id_of(env, "work")
    assert keyring.get_password(KEYRING_SERVICE, credential_id) == SECRET  # the newline is not part of it


@pytest.mark.keyring
def test_a_secret_from_an_environment_variable(env: dict[str, str]) -> None:
    ok(vault(["create", "work"], env))
    args = ["add", "work", "--type", "github_token", "--match", "ghe.example.com:8443", "--from-env", "MY_TOKEN"]
    ok(vault(args, {**env, "MY_TOKEN": SECRET}))
    credential_id = credential_id_of(env, "work")
    assert keyring.get_password(KEYRING_SERVICE, credential_id) == SECRET
    missing = vault(["add", "work", "--type", "github_token", "--match", "github.com", "--from-env", "UNSET_VAR"], env)
    assert missing.returncode == 1
    assert "UNSET_VAR" in missing.stderr


@pytest.mark.keyring
def test_a_secret_from_a_command_is_never_on_the_cli_argv_and_only_the_command_is_kept(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(SECRET)
    argv_seen = tmp_path / "parent-argv"
    # The command saves its parent's (the CLI's) argv, then prints the secret.
    command = f"tr '\\0' ' ' < /proc/$PPID/cmdline > {argv_seen}; cat {tmp_path / 'token'}"
    ok(vault(["create", "work"], env))
    ok(vault(["add", "work", "--type", "github_token", "--match", "github.com", "--from-command", command], env))
    assert "--from-command" in argv_seen.read_text()
    assert SECRET not in argv_seen.read_text()
    shown = json.loads(ok(vault(["show", "work", "--json"], env)))
    (credential,) = shown["credentials"]
    assert (credential["source"], credential["command"]) == ("command", command)
    assert keyring.get_password(KEYRING_SERVICE, credential["id"]) is None
    no_secret_on_disk(env)


@pytest.mark.keyring
def test_remove_deletes_the_keyring_entry_and_check_reports_drift(env: dict[str, str]) -> None:
    ok(vault(["create", "work"], env))
    ok(vault(["add", "work", "--type", "static_bearer", "--match", MCP_URL, "--stdin"], env, SECRET))
    ok(vault(["add", "work", "--type", "github_token", "--match", "github.com", "--stdin"], env, SECRET + "-gh"))
    shown = json.loads(ok(vault(["show", "work", "--json"], env)))
    bearer, github = (c["id"] for c in shown["credentials"])
    assert "ok:" in ok(vault(["check"], env))

    keyring.delete_password(KEYRING_SERVICE, github)  # behind the vault's back
    checked = vault(["check"], env)
    assert checked.returncode == 1
    assert github in checked.stdout
    assert f"managed-sessions vault remove {shown['id']} {github}" in checked.stdout

    ok(vault(["remove", "work", bearer], env))
    assert keyring.get_password(KEYRING_SERVICE, bearer) is None
    ok(vault(["remove", shown["id"], github], env))
    assert json.loads(ok(vault(["show", "work", "--json"], env)))["credentials"] == []
    assert vault(["check"], env).returncode == 0


@pytest.mark.keyring
def test_doctor_reports_a_secure_keyring_and_vault_drift(env: dict[str, str]) -> None:
    ok(vault(["create", "work"], env))
    ok(vault(["add", "work", "--type", "github_token", "--match", "github.com", "--stdin"], env, SECRET))
    credential_id = credential_id_of(env, "work")
    keyring.delete_password(KEYRING_SERVICE, credential_id)
    doctor = subprocess.run(
        [*SERVER, "doctor"], env=python_path_env(env), capture_output=True, text=True, timeout=120, check=False
    )
    lines = doctor.stdout.splitlines()
    assert any(line.startswith("[ok  ] keyring") and "SecretService" in line for line in lines), doctor.stdout
    vault_line = next(line for line in lines if line.startswith("[warn] vault"))
    assert credential_id in vault_line
    assert "managed-sessions vault remove" in doctor.stdout


@pytest.mark.keyring
def test_delete_asks_for_yes_and_removes_every_keyring_entry(env: dict[str, str]) -> None:
    ok(vault(["create", "work"], env))
    ok(vault(["add", "work", "--type", "github_token", "--match", "github.com", "--stdin"], env, SECRET))
    credential_id = credential_id_of(env, "work")
    refused = vault(["delete", "work"], env)
    assert refused.returncode == 1
    assert "--yes" in refused.stderr
    assert "deleted vault 'work'" in ok(vault(["delete", "work", "--yes"], env))
    assert keyring.get_password(KEYRING_SERVICE, credential_id) is None
    assert "no vaults" in ok(vault(["list"], env))


def test_errors_go_to_stderr_with_exit_status_one(subprocess_env: dict[str, str]) -> None:
    result = vault(["show", "nope"], subprocess_env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "no vault 'nope'" in result.stderr
    conflict = [vault(["create", "dup"], subprocess_env), vault(["create", "dup"], subprocess_env)]
    assert [r.returncode for r in conflict] == [0, 1]
    assert "already exists" in conflict[1].stderr


def test_a_plaintext_or_null_keyring_is_refused_unless_the_user_opts_in(subprocess_env: dict[str, str]) -> None:
    env = {**subprocess_env, "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    ok(vault(["create", "work"], env))
    args = ["add", "work", "--type", "github_token", "--match", "github.com", "--stdin"]
    refused = vault(args, env, SECRET)
    assert refused.returncode == 1
    assert "keyring.backends.null.Keyring" in refused.stderr
    assert "MANAGED_SESSIONS_VAULT_ALLOW_INSECURE_KEYRING=1" in refused.stderr
    assert SECRET not in refused.stdout + refused.stderr

    doctor = subprocess.run(
        [*SERVER, "doctor"], env=python_path_env(env), capture_output=True, text=True, timeout=120, check=False
    )
    keyring_line = next(line for line in doctor.stdout.splitlines() if line.startswith("[warn] keyring"))
    assert "the vault refuses" in keyring_line

    ok(vault(args, {**env, "MANAGED_SESSIONS_VAULT_ALLOW_INSECURE_KEYRING": "1"}, SECRET))


@pytest.mark.keyring
def test_on_a_terminal_the_secret_is_read_from_a_hidden_prompt(env: dict[str, str]) -> None:
    ok(vault(["create", "work"], env))
    transcript = run_on_a_terminal(
        [*SERVER, "vault", "add", "work", "--type", "github_token", "--match", "github.com"], env, SECRET
    )
    assert "(hidden):" in transcript
    assert SECRET not in transcript  # echo was off while it was typed
    credential_id = credential_id_of(env, "work")
    assert keyring.get_password(KEYRING_SERVICE, credential_id) == SECRET


def run_on_a_terminal(argv: list[str], env: dict[str, str], typed: str) -> str:
    """Runs argv with a pseudo-terminal as its controlling terminal; types `typed` at the prompt."""
    master, slave = pty.openpty()

    def take_the_terminal() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    child = subprocess.Popen(
        argv, env=python_path_env(env), stdin=slave, stdout=slave, stderr=slave, preexec_fn=take_the_terminal
    )
    os.close(slave)
    transcript = read_until(master, "(hidden): ")
    os.write(master, (typed + "\n").encode())
    transcript += read_until(master, None)
    assert child.wait(timeout=60) == 0, transcript
    os.close(master)
    return transcript


def read_until(fd: int, marker: str | None, timeout_s: float = 60) -> str:
    """Terminal output until `marker` appears (or, with None, until the child closes the terminal)."""
    seen = b""
    deadline = time.monotonic() + timeout_s
    while marker is None or marker.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no {marker!r} on the terminal within {timeout_s} s: {seen!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed its side
            chunk = b""
        if not chunk:
            break
        seen += chunk
    return seen.decode(errors="replace")
