"""Dynamic secrets: a command prints the secret; it runs at add time, then again only when its value is stale."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from vault import VaultError, Vaults

TOKEN = "dynamic-token-0123456789"


def counting_command(tmp_path: Path, output: str = TOKEN) -> tuple[str, Path]:
    """A command that prints `output` (kept in a file, so the command text does not hold it) and appends a
    line to a counter file each time it runs."""
    counter, source = tmp_path / "runs", tmp_path / "token.txt"
    source.write_text(output + "\n")
    return f"echo run >> {shlex.quote(str(counter))}; cat {shlex.quote(str(source))}", counter


def runs(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def test_the_command_runs_once_at_add_time_and_only_its_text_is_stored(
    vaults: Vaults, tmp_path: Path, index_path: Path, memory_keyring: Any
) -> None:
    vaults.create_vault("work")
    command, counter = counting_command(tmp_path)
    credential = vaults.add_credential("work", "github_token", "github.com", command=command)
    assert runs(counter) == 1
    assert (credential.source, credential.command) == ("command", command)
    assert TOKEN not in index_path.read_text()
    assert memory_keyring.entries == {}


class FakeClock:
    """A monotonic clock (seconds) that moves only when the test moves it: the TTL passes without waiting."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_fresh_value_is_cached_until_the_ttl_passes(memory_keyring: Any, index_path: Path, tmp_path: Path) -> None:
    command, counter = counting_command(tmp_path)
    cli = Vaults(index_path)
    vault = cli.create_vault("work")
    cli.add_credential("work", "github_token", "github.com", command=command)
    clock = FakeClock()
    server = Vaults(index_path, command_ttl_s=60, clock=clock)

    def use() -> None:
        found = server.git_token_for([vault.id], "https://github.com/o/r")
        assert found is not None
        assert found.reveal() == TOKEN

    for _ in range(5):
        use()
    assert runs(counter) == 2  # add, then the server's first use
    clock.advance(59.5)
    use()
    assert runs(counter) == 2  # still within the TTL: the cached value
    clock.advance(0.5)
    use()
    assert runs(counter) == 3  # the TTL has passed: the command ran again
    clock.advance(59.5)
    use()
    assert runs(counter) == 3  # and its new value is cached for a TTL of its own
    assert server.keyring_reads == 0
    assert server.redactor.redact(TOKEN) == "[REDACTED]"


def test_a_stale_value_makes_the_command_run_again(memory_keyring: Any, index_path: Path, tmp_path: Path) -> None:
    command, counter = counting_command(tmp_path)
    vaults = Vaults(index_path, command_ttl_s=0.0)
    vault = vaults.create_vault("work")
    vaults.add_credential("work", "github_token", "github.com", command=command)
    for _ in range(3):
        assert vaults.git_token_for([vault.id], "github.com") is not None
    assert runs(counter) == 4


def test_a_failing_command_names_the_credential_and_status_but_never_its_output(
    memory_keyring: Any, index_path: Path, tmp_path: Path
) -> None:
    flag, source = tmp_path / "fail", tmp_path / "token.txt"
    source.write_text(TOKEN)
    command = f"cat {source}; if [ -e {flag} ]; then echo 'not logged in' >&2; exit 3; fi"
    vaults = Vaults(index_path, command_ttl_s=0.0)
    vault = vaults.create_vault("work")
    credential = vaults.add_credential("work", "github_token", "github.com", command=command)
    flag.touch()
    with pytest.raises(VaultError) as raised:
        vaults.git_token_for([vault.id], "github.com")
    message = str(raised.value)
    assert credential.id in message
    assert "status 3" in message
    assert "not logged in" in message
    assert TOKEN not in message


def test_a_failing_command_does_not_leak_its_stdout_through_stderr(vaults: Vaults) -> None:
    vaults.create_vault("work")
    with pytest.raises(VaultError) as raised:
        vaults.add_credential(
            "work", "github_token", "github.com", command=f"echo {TOKEN}; echo 'bad token {TOKEN}' >&2; exit 1"
        )
    assert TOKEN not in str(raised.value)
    assert vaults.list_credentials("work") == []


@pytest.mark.parametrize(
    ("command", "message"),
    [("true", "printed nothing"), ("printf short", "shorter than 8"), ("   ", "command is empty")],
)
def test_commands_printing_nothing_usable_are_refused_at_add_time(vaults: Vaults, command: str, message: str) -> None:
    vaults.create_vault("work")
    with pytest.raises(VaultError, match=message):
        vaults.add_credential("work", "github_token", "github.com", command=command)
    assert vaults.list_credentials("work") == []
