"""The vault package stands alone: importing it pulls in nothing of the server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import vault


def test_importing_vault_imports_no_server_module() -> None:
    code = "import sys, vault, vault.vaults; print(sorted(m for m in sys.modules if m.split('.')[0] == 'server'))"
    root = str(Path(__file__).parents[2])
    out = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": root}, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_every_public_name_is_exported() -> None:
    for name in vault.__all__:
        assert hasattr(vault, name), name
