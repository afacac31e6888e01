"""`managed-sessions doctor`: is this machine ready to run sessions, and if not, how to fix it.

Each check prints one line (`ok`, `warn` or `FAIL`) and, when something is
wrong, the fix. The exit status is 1 when a required check fails. No check
ever prints a secret: the model key is reported as present or missing.
With `--repair`, a session whose cached state disagrees with its event log
gets the state rebuilt from the log (the log is the truth).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import anyio
import docker
import docker.errors
from pydantic import ValidationError

from server.core.config import ServerConfig
from server.core.errors import SandboxUnavailableError, ServerError
from server.hands.docker.images import made_locally
from server.hands.docker.packet_filter import PacketFilter
from server.hands.docker.sandbox import MemoryRecords
from server.hands.sandbox import Leftovers
from server.services.model_checks import check_models
from server.services.runtime import docker_sandboxes
from server.store.sqlite.store import Store
from vault import ALLOW_INSECURE_KEYRING_VARIABLE, KEYRING_SERVICE, KeyringStore, VaultError, Vaults, describe_backend

__all__ = ["Check", "run_checks", "run_doctor"]

Level = Literal["ok", "warn", "FAIL"]

MAX_LISTED_SESSIONS = 5
"""A line names a few stale sessions; the rest are counted (and all of them repaired)."""


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str
    fix: str = ""


def check_docker(config: ServerConfig) -> list[Check]:
    """The engine, then the sandbox image on it."""
    try:
        client = docker.from_env(timeout=10)
        version = client.version()
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "the default socket")
        return [
            Check(
                "docker engine",
                "FAIL",
                f"no Docker engine answers at {where}: {exc}",
                "start Docker (Docker Desktop, 'sudo systemctl start docker', or 'dockerd &'), or set DOCKER_HOST",
            ),
            Check("sandbox image", "FAIL", f"cannot look for {config.image!r} without an engine", "fix Docker first"),
        ]
    engine = Check("docker engine", "ok", f"Docker {version.get('Version')} (API {version.get('ApiVersion')})")
    try:
        image = client.images.get(config.image)
    except docker.errors.ImageNotFound:
        if made_locally(config.image):  # the first session that needs it builds it
            missing = Check(
                "sandbox image",
                "warn",
                f"{config.image!r} is not built yet: the first session that needs a sandbox builds it (a few minutes)",
                "run 'managed-sessions image build' to build it now, with its output on the terminal",
            )
        else:
            missing = Check(
                "sandbox image",
                "FAIL",
                f"{config.image!r} is not on this engine",
                f"run 'docker pull {config.image}', or 'managed-sessions image build' to make it under that name "
                "(or set MANAGED_SESSIONS_IMAGE to an image you have)",
            )
        return [engine, missing, check_leftovers(config)]
    except docker.errors.APIError as exc:
        return [engine, Check("sandbox image", "FAIL", f"cannot inspect {config.image!r}: {exc}", "check the engine")]
    size_mb = int(image.attrs.get("Size", 0)) // 1_000_000
    found = Check("sandbox image", "ok", f"{config.image} ({image.short_id}, {size_mb} MB)")
    return [engine, found, check_leftovers(config)]


def check_leftovers(config: ServerConfig) -> Check:
    """Containers and volumes of deleted (or archived) sessions, which the server reaps when it starts."""
    if not config.database_path.exists():
        return Check("sandbox leftovers", "ok", "no store yet")
    store = Store.open(config.database_path)
    try:
        store_id, sessions, owners = store.store_id, store.session_ids(), store.volume_owners()
    finally:
        store.close()
    try:
        leftovers = anyio.run(_leftovers, config, store_id, sessions, owners)
    except SandboxUnavailableError as exc:
        return Check("sandbox leftovers", "warn", f"cannot look for them: {exc}", "fix Docker first")
    if not leftovers.containers and not leftovers.volumes:
        return Check("sandbox leftovers", "ok", "none")
    detail = f"{len(leftovers.containers)} container(s), {len(leftovers.volumes)} volume(s) no session needs"
    return Check("sandbox leftovers", "warn", detail, "the server removes them when it next starts")


async def _leftovers(
    config: ServerConfig, store_id: str, sessions: dict[str, bool], owners: dict[str, str]
) -> Leftovers:
    """The Docker backend's answer; it needs a task group, which nothing here starts anything in."""
    async with anyio.create_task_group() as task_group:
        records = MemoryRecords(owners)
        found = await docker_sandboxes(config, store_id, task_group, records=records).leftovers(sessions)
    return found


def check_keyring(config: ServerConfig) -> Check:
    """Whether the backend keeps secrets encrypted, and so whether the vault will use it."""
    try:
        backend = describe_backend()
        KeyringStore(KEYRING_SERVICE).get("doctor-probe")
    except VaultError as exc:
        return Check(
            "keyring",
            "warn",
            str(exc),
            "the HTTP token and vault credentials need it; or set MANAGED_SESSIONS_TOKEN for HTTP",
        )
    if backend.secure:
        return Check("keyring", "ok", f"{backend.name} (secure; the vault uses it)")
    if config.vault_allow_insecure_keyring:
        return Check(
            "keyring",
            "warn",
            f"{backend.name} does not keep secrets encrypted; the vault uses it anyway "
            f"because {ALLOW_INSECURE_KEYRING_VARIABLE}=1",
            "use the OS keyring (Keychain, Credential Locker, SecretService/KWallet) and unset the variable",
        )
    return Check(
        "keyring",
        "warn",
        f"{backend.name} does not keep secrets encrypted; the vault refuses to store or read secrets with it",
        "use the OS keyring (Keychain, Credential Locker, SecretService/KWallet), "
        f"or accept plain text explicitly with {ALLOW_INSECURE_KEYRING_VARIABLE}=1",
    )


def check_vault(config: ServerConfig) -> Check:
    """Drift: credentials in the vault's index whose secret is gone from the keyring."""
    if not config.vault_index_path.exists():
        return Check("vault", "ok", "no vaults yet")
    vaults = Vaults(config.vault_index_path, allow_insecure_keyring=config.vault_allow_insecure_keyring)
    try:
        count = sum(v.credential_count for v in vaults.list_vaults())
        drifted = vaults.drift()
    except VaultError as exc:
        return Check("vault", "warn", f"cannot check the vault: {exc}", "fix the keyring (see above)")
    if not drifted:
        return Check("vault", "ok", f"{count} credential(s), every keyring secret present")
    listed = ", ".join(f"{c.id} ({c.type} for {c.match})" for c in drifted)
    first = drifted[0]
    return Check(
        "vault",
        "warn",
        f"{len(drifted)} credential(s) lost their secret from the keyring: {listed}",
        f"re-add them with 'managed-sessions vault add', or remove them: "
        f"'managed-sessions vault remove {first.vault_id} {first.id}' (and likewise for the others)",
    )


def check_data_dir(config: ServerConfig) -> Check:
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=config.data_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(
            "data dir",
            "FAIL",
            f"{config.data_dir} is not writable: {exc.strerror}",
            "fix its permissions or set MANAGED_SESSIONS_DATA_DIR to a writable directory",
        )
    return Check("data dir", "ok", str(config.data_dir))


def check_session_states(config: ServerConfig, *, repair: bool = False) -> Check:
    """Each session's cached state against a replay of its event log; with `repair`, rebuilt from the log."""
    if not config.database_path.exists():
        return Check("session state", "ok", "no store yet")
    try:
        stale = _stale_states(config, repair=repair)
    except (sqlite3.Error, ServerError, ValidationError) as exc:  # an unreadable store is reported, not a crash
        return Check(
            "session state",
            "FAIL",
            f"cannot read {str(config.database_path)!r}: {exc}",
            "restore the file from a backup (the server cannot start on it either)",
        )
    listed = ", ".join(stale[:MAX_LISTED_SESSIONS]) + (", ..." if len(stale) > MAX_LISTED_SESSIONS else "")
    if not stale:
        return Check("session state", "ok", "every session's cached state matches its event log")
    if repair:
        return Check("session state", "ok", f"rebuilt {len(stale)} session(s)' state from the event log: {listed}")
    return Check(
        "session state",
        "FAIL",
        f"{len(stale)} session(s) whose cached status or usage disagrees with the event log: {listed}",
        "run 'managed-sessions doctor --repair' to rebuild it from the log (safe while the server runs)",
    )


def _stale_states(config: ServerConfig, *, repair: bool) -> list[str]:
    """The sessions whose cached state disagrees with their log; with `repair`, rebuilt from it."""
    store = Store.open(config.database_path)
    try:
        stale = store.stale_state_ids()
        for session_id in stale if repair else ():
            store.rebuild_state(session_id)
    finally:
        store.close()
    return stale


def check_model(config: ServerConfig) -> list[Check]:
    """Each model provider that may be used: its key, and whether it answers (`model_checks.py`)."""
    return [Check(c.name, c.level, c.detail, c.fix) for c in check_models(config)]


def check_egress(config: ServerConfig) -> Check:
    """Whether sandbox networks can be kept off the host and private networks here (packet filters)."""
    name = "sandbox networks"
    if config.egress_allow_private:
        return Check(
            name,
            "warn",
            "MANAGED_SESSIONS_EGRESS_ALLOW_PRIVATE=1: sandboxes may reach this host's services and private networks",
            "unset it unless sandboxes must reach a private mirror (tests set it)",
        )
    why_not = PacketFilter("doctor").why_not()
    if why_not is not None:
        return Check(
            name,
            "warn",
            f"packet filters cannot be set ({why_not}): a sandbox with a network can reach services this host binds "
            "on all interfaces and private addresses ('limited' reaches the outside only through the egress proxy)",
            "run the server as root (or with CAP_NET_ADMIN) with iptables installed, or use networking 'none'",
        )
    return Check(name, "ok", "packet filters keep sandboxes off the host and private networks (iptables)")


def run_checks(config: ServerConfig, *, repair: bool = False) -> list[Check]:
    steps: list[Callable[[], list[Check]]] = [
        lambda: check_docker(config),
        lambda: [check_egress(config)],
        lambda: [check_keyring(config), check_vault(config)],
        lambda: [check_data_dir(config), check_session_states(config, repair=repair)],
        lambda: check_model(config),
    ]
    return [check for step in steps for check in step()]


def run_doctor(config: ServerConfig, *, repair: bool = False) -> int:
    checks = run_checks(config, repair=repair)
    width = max(len(c.name) for c in checks)
    for check in checks:
        sys.stdout.write(f"[{check.level:<4}] {check.name:<{width}}  {check.detail}\n")
        if check.fix:
            sys.stdout.write(f"{'':7} {'':<{width}}  fix: {check.fix}\n")
    failed = [c.name for c in checks if c.level == "FAIL"]
    sys.stdout.write(f"\n{'not ready: ' + ', '.join(failed) if failed else 'ready'}\n")
    return 1 if failed else 0
