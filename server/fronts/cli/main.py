"""The `managed-sessions` command: serve, doctor, image build, token, vault, sessions, skill.

Output for people goes to stderr (and `doctor`, `token show`, `vault` and `sessions`
print to stdout, since they never run as a transport); on `serve` over stdio, stdout
carries nothing but the protocol.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence

from server.core.config import DEFAULT_HTTP_PORT, ServerConfig
from server.core.errors import ServerError
from server.core.log import configure_logging
from server.core.version import __version__
from server.fronts.cli.sessions import add_sessions_parser, run_sessions_command
from server.fronts.cli.skills import add_skill_parser, run_skill_command
from server.fronts.cli.vault import add_vault_parser, run_vault_command

__all__ = ["main"]

logger = logging.getLogger("managed-sessions")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="managed-sessions", description="Self-hosted managed agent sessions over MCP."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_HTTP_PORT, help=f"HTTP port (default {DEFAULT_HTTP_PORT})")

    doctor = commands.add_parser(
        "doctor",
        help="check Docker, the sandbox image, the keyring, the data dir, the sessions' state, model credentials",
    )
    doctor.add_argument(
        "--repair", action="store_true", help="rebuild each session's cached state that disagrees with its event log"
    )

    image = commands.add_parser("image", help="manage the sandbox image")
    image_commands = image.add_subparsers(dest="image_command", required=True)
    build = image_commands.add_parser("build", help="build the default sandbox image")
    build.add_argument("--tag", default=None, help="image name (default: MANAGED_SESSIONS_IMAGE or the built-in name)")
    build.add_argument(
        "--source",
        choices=["auto", "registry", "debootstrap"],
        default="auto",
        help="base layer: pull from a registry, or make it offline with debootstrap (auto tries the registry first)",
    )

    token = commands.add_parser("token", help="the HTTP transport's bearer token")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    token_commands.add_parser("show", help="print the token kept in the keyring")
    token_commands.add_parser("rotate", help="replace the token kept in the keyring (clients need the new one)")

    add_vault_parser(commands)
    add_sessions_parser(commands)
    add_skill_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "serve":
        gc.enable()  # only serve's start-up runs without it (server.fronts.cli.entry), until settle_heap
    configure_logging(args.log_level)
    config = ServerConfig.from_env()
    try:
        return _dispatch(args, config)
    except ServerError as exc:
        logger.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, config: ServerConfig) -> int:
    if args.command == "serve":
        from server.fronts.cli.serve import serve

        serve(config, transport=args.transport, host=args.host, port=args.port)
        return 0
    if args.command == "doctor":
        from server.services.doctor import run_doctor

        return run_doctor(config, repair=args.repair)
    if args.command == "image":
        from server.services.images import build_base_image

        build_base_image(config, tag=args.tag, source=args.source)
        return 0
    if args.command == "vault":
        return run_vault_command(args, config)
    if args.command == "sessions":
        return run_sessions_command(args, config)
    if args.command == "skill":
        return run_skill_command(args, config)
    from server.fronts.cli.token import rotate_token, show_token

    if args.token_command == "show":  # noqa: S105 - a subcommand's name
        return show_token(config)
    return rotate_token(config)


if __name__ == "__main__":
    sys.exit(main())
