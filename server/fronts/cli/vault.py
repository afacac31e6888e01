"""`managed-sessions vault ...`: manage vaults and credentials on the host.

This is the only way a secret enters the vault, so that it never passes through an MCP
client or a model's context. A secret is read from a hidden prompt, stdin, an environment
variable, or a command's output; never from argv (other users can read a process's argv)
and never printed. Output for people goes to stdout, errors to stderr; exit status 0 or 1.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from dataclasses import asdict
from datetime import datetime
from typing import Any

from server.core.config import ServerConfig
from server.fronts.cli.printing import out, print_json, table
from vault import CredentialInfo, Secret, VaultError, VaultInfo, Vaults, describe_backend

__all__ = ["add_vault_parser", "run_vault_command"]

_Subparsers = argparse._SubParsersAction  # argparse has no public name for it


def add_vault_parser(commands: _Subparsers[argparse.ArgumentParser]) -> None:
    """Adds `vault` and its subcommands to the `managed-sessions` parser."""
    vault = commands.add_parser("vault", help="vaults of credentials for MCP servers and git hosts (OS keyring)")
    sub = vault.add_subparsers(dest="vault_command", required=True)

    create = sub.add_parser("create", help="create an empty vault")
    create.add_argument("name", help="display name, unique (1-255 characters)")
    create.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    create.add_argument("--json", action="store_true", help="print the vault as JSON")

    listing = sub.add_parser("list", help="list vaults")
    listing.add_argument("--json", action="store_true")

    show = sub.add_parser("show", help="a vault and its credentials (metadata only, never a secret)")
    show.add_argument("vault", help="vault id or display name")
    show.add_argument("--json", action="store_true")

    delete = sub.add_parser("delete", help="delete a vault, its credentials and their keyring entries")
    delete.add_argument("vault", help="vault id or display name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    add = sub.add_parser(
        "add",
        help="add a credential; the secret comes from a hidden prompt, stdin, --from-env or --from-command",
        description="With no source flag, the secret is read from a hidden prompt when stdin is a terminal, "
        "else from stdin. It is never taken from the command line.",
    )
    add.add_argument("vault", help="vault id or display name")
    add.add_argument("--type", required=True, choices=["static_bearer", "github_token"])
    add.add_argument("--match", required=True, help="MCP server URL (static_bearer) or git host / repo URL")
    add.add_argument("--name", default=None, help="a display name for the credential")
    source = add.add_mutually_exclusive_group()
    source.add_argument("--from-env", metavar="VAR", help="read the secret from this environment variable")
    source.add_argument(
        "--from-command",
        metavar="CMD",
        help="a shell command printing the secret (e.g. 'gh auth token'); re-run when its cached value expires",
    )
    source.add_argument("--stdin", action="store_true", help="read the secret from stdin")
    add.add_argument("--json", action="store_true", help="print the credential as JSON")

    remove = sub.add_parser("remove", help="remove a credential and its keyring entry")
    remove.add_argument("vault", help="vault id or display name")
    remove.add_argument("credential_id", help="cred_ id ('vault show' lists them)")

    sub.add_parser("check", help="report credentials whose secret vanished from the keyring (exit 1 if any)")


def run_vault_command(args: argparse.Namespace, config: ServerConfig) -> int:
    vaults = Vaults(config.vault_index_path, allow_insecure_keyring=config.vault_allow_insecure_keyring)
    handlers = {
        "create": _create,
        "list": _list,
        "show": _show,
        "delete": _delete,
        "add": _add,
        "remove": _remove,
        "check": _check,
    }
    try:
        return handlers[args.vault_command](vaults, args)
    except VaultError as exc:
        sys.stderr.write(f"managed-sessions vault {args.vault_command}: {exc}\n")
        return 1


def _create(vaults: Vaults, args: argparse.Namespace) -> int:
    metadata: dict[str, str] = {}
    for item in args.metadata:
        key, sep, value = item.partition("=")
        if not sep:
            raise VaultError(f"--metadata takes KEY=VALUE, got {item!r}")
        metadata[key] = value
    info = vaults.create_vault(args.name, metadata)
    if args.json:
        return print_json(_vault_json(info))
    out(f"created vault {info.display_name!r} ({info.id})")
    out(f"add credentials with: managed-sessions vault add {info.id} --type static_bearer|github_token --match ...")
    return 0


def _list(vaults: Vaults, args: argparse.Namespace) -> int:
    infos = vaults.list_vaults()
    if args.json:
        return print_json([_vault_json(i) for i in infos])
    if not infos:
        out("no vaults; create one with: managed-sessions vault create NAME")
        return 0
    rows = [(i.id, i.display_name, str(i.credential_count), _when(i.created_at)) for i in infos]
    table(("ID", "NAME", "CREDENTIALS", "CREATED"), rows)
    return 0


def _show(vaults: Vaults, args: argparse.Namespace) -> int:
    info = vaults.get_vault(args.vault)
    credentials = vaults.list_credentials(info.id)
    if args.json:
        return print_json({**_vault_json(info), "credentials": [_credential_json(c) for c in credentials]})
    out(f"vault {info.display_name!r} ({info.id}), created {_when(info.created_at)}")
    for key, value in sorted(info.metadata.items()):
        out(f"  {key}={value}")
    if not credentials:
        out("no credentials; add one with: managed-sessions vault add " + info.id + " --type ... --match ...")
        return 0
    rows = [(c.id, c.type, c.match, _source(c), c.display_name or "", _when(c.created_at)) for c in credentials]
    table(("ID", "TYPE", "MATCH", "SOURCE", "NAME", "CREATED"), rows)
    return 0


def _delete(vaults: Vaults, args: argparse.Namespace) -> int:
    info = vaults.get_vault(args.vault)
    if not args.yes:
        if not sys.stdin.isatty():
            raise VaultError("not deleting without confirmation; pass --yes")
        sys.stderr.write(f"delete vault {info.display_name!r} and its {info.credential_count} credential(s)? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            out("not deleted")
            return 1
    vaults.delete_vault(info.id)
    out(f"deleted vault {info.display_name!r} ({info.id}) and {info.credential_count} credential(s)")
    return 0


def _add(vaults: Vaults, args: argparse.Namespace) -> int:
    secret = None if args.from_command else _read_secret(args)
    info = vaults.add_credential(
        args.vault, args.type, args.match, secret=secret, command=args.from_command, display_name=args.name
    )
    if args.json:
        return print_json(_credential_json(info))
    out(f"added {info.type} credential {info.id} for {info.match} ({_source(info)})")
    return 0


def _read_secret(args: argparse.Namespace) -> Secret:
    """The secret from --from-env, --stdin, or (by default) a hidden prompt on a terminal, else stdin."""
    if args.from_env:
        value = os.environ.get(args.from_env, "")
        if not value.strip():
            raise VaultError(f"the environment variable {args.from_env!r} is not set or is empty")
    elif args.stdin or not sys.stdin.isatty():
        value = sys.stdin.read()
    else:
        value = getpass.getpass(f"secret for {args.type} {args.match} (hidden): ")
    value = value.strip()
    if not value:
        raise VaultError("no secret given (empty input)")
    return Secret("new credential", value)


def _remove(vaults: Vaults, args: argparse.Namespace) -> int:
    vaults.remove_credential(args.vault, args.credential_id)
    out(f"removed credential {args.credential_id} and its keyring entry")
    return 0


def _check(vaults: Vaults, args: argparse.Namespace) -> int:
    backend = describe_backend()
    out(f"keyring backend: {backend.name} ({'secure' if backend.secure else 'NOT secure'})")
    drifted = vaults.drift()
    if not drifted:
        out("ok: every keyring credential has its secret")
        return 0
    out(f"{len(drifted)} credential(s) lost their secret from the keyring:")
    for c in drifted:
        out(f"  {c.id} in {c.vault_id}: {c.type} for {c.match}")
        out(f"    fix: managed-sessions vault remove {c.vault_id} {c.id}   (then add it again)")
    return 1


def _source(info: CredentialInfo) -> str:
    return f"command: {info.command}" if info.source == "command" else "keyring"


def _vault_json(info: VaultInfo) -> dict[str, Any]:
    return _json_fields(asdict(info))


def _credential_json(info: CredentialInfo) -> dict[str, Any]:
    return _json_fields(asdict(info))


def _json_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Timestamps (created_at, updated_at, archived_at) as ISO 8601 strings."""
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in fields.items()}


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
