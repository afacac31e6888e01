"""The index file: private modes, atomic replacement, one writer at a time across processes, cheap reads."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from vault import VaultError, Vaults
from vault.index import VaultIndex

WRITER = """
import sys
from pathlib import Path
from vault import Vaults
vaults = Vaults(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    vaults.create_vault(f"{sys.argv[2]}-{i}")
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_index_is_0600_in_a_0700_directory_and_holds_only_metadata(index_path: Path) -> None:
    vaults = Vaults(index_path)
    vaults.create_vault("work", {"owner": "me"})
    assert mode(index_path) == 0o600
    assert mode(index_path.parent) == 0o700
    assert mode(index_path.with_name("index.json.lock")) == 0o600
    data = json.loads(index_path.read_text())
    assert data["version"] == 1
    assert [v["display_name"] for v in data["vaults"]] == ["work"]


def test_a_too_open_vault_directory_is_closed_again(index_path: Path) -> None:
    index_path.parent.mkdir(parents=True)
    index_path.parent.chmod(0o755)
    Vaults(index_path).create_vault("work")
    assert mode(index_path.parent) == 0o700


def test_each_write_replaces_the_file_whole(index_path: Path) -> None:
    vaults = Vaults(index_path)
    vaults.create_vault("one")
    first_inode = index_path.stat().st_ino
    vaults.create_vault("two")
    assert index_path.stat().st_ino != first_inode  # a new file renamed over the old one, not rewritten in place
    assert sorted(p.name for p in index_path.parent.iterdir()) == ["index.json", "index.json.lock"]


def test_a_failing_change_leaves_the_file_as_it_was(index_path: Path) -> None:
    index = VaultIndex(index_path)
    Vaults(index_path).create_vault("one")
    before = index_path.read_bytes()

    def change_then_fail() -> None:
        with index.update() as data:
            data.vaults.clear()
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert index_path.read_bytes() == before


def test_concurrent_writers_in_separate_processes_lose_no_update(index_path: Path) -> None:
    root = str(Path(__file__).parents[2])
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(index_path), f"w{n}", "15"],
            env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"},
            stderr=subprocess.PIPE,
        )
        for n in range(4)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
    names = {v.display_name for v in Vaults(index_path).list_vaults()}
    assert names == {f"w{n}-{i}" for n in range(4) for i in range(15)}


def test_a_reader_sees_another_writers_changes_and_parses_only_when_the_file_changed(index_path: Path) -> None:
    reader, writer = VaultIndex(index_path), Vaults(index_path)
    assert reader.read().vaults == []
    writer.create_vault("one")
    first = reader.read()
    assert [v.display_name for v in first.vaults] == ["one"]
    assert reader.read() is first  # unchanged file: the cached parse
    writer.create_vault("two")
    assert [v.display_name for v in reader.read().vaults] == ["one", "two"]


def test_a_damaged_index_is_reported_with_what_to_do(index_path: Path) -> None:
    index_path.parent.mkdir(parents=True)
    index_path.write_text('{"version": 1, "vaults": [{"id": 3}]}')
    with pytest.raises(VaultError, match=r"damaged.*move it aside"):
        Vaults(index_path).list_vaults()
