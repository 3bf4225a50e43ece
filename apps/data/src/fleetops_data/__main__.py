"""``fleetops-data [serve|migrate|seed|add-user|ensure-user USER ROLE]``: the data CLI.

This is the only module that reads ``os.environ``; everything else gets a :class:`Config`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from fleetops_common.envconfig import ConfigError
from fleetops_common.lameduck import LameDuck
from fleetops_common.server import build_server, configure_logging, serve_forever
from fleetops_data import migrate as migrations
from fleetops_data import seed as seeding
from fleetops_data.app import build_app
from fleetops_data.config import Config
from fleetops_data.db import DatabaseUnavailable
from fleetops_data.store import Store, UserExistsError
from fleetops_data.validation import ROLES, ValidationError

NAME = "fleetops-data"
# What HAProxy and the instance groups' autohealing check: 503 while draining.
HEALTH_PATHS = ("/api/health",)


def _serve(config: Config, store: Store, _args: argparse.Namespace) -> int:
    configure_logging()
    lame_duck = LameDuck(config.drain, HEALTH_PATHS)
    server = build_server(lame_duck.wrap(build_app(config, store)), config.server_settings())
    serve_forever(server, NAME, lame_duck)
    return 0


def _migrate(_config: Config, store: Store, _args: argparse.Namespace) -> int:
    applied = migrations.migrate(store)
    names = ", ".join(m.name for m in applied)
    print(f"applied {names}" if applied else "schema is up to date")
    return 0


def _seed(_config: Config, store: Store, _args: argparse.Namespace) -> int:
    users, quotes = seeding.seed(store)
    print(f"added {users} users and {quotes} quotes")
    return 0


def _add_user(_config: Config, store: Store, args: argparse.Namespace) -> int:
    # From stdin, never argv: command lines are visible to every user in `ps`.
    password = sys.stdin.readline().rstrip("\r\n")
    store.add_user(args.username, password, args.role)
    print(f"added user {args.username} ({args.role})")
    return 0


def _ensure_user(_config: Config, store: Store, args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\r\n")
    outcome = store.ensure_user(args.username, password, args.role)
    print(f"{outcome} user {args.username} ({args.role})")
    return 0


# Failures an operator can act on from a one-line message (OSError: e.g. the port is taken);
# anything else is a bug and keeps its traceback.
_FAILURES = (
    DatabaseUnavailable,
    migrations.MigrationError,
    UserExistsError,
    ValidationError,
    OSError,
)

Command = Callable[[Config, Store, argparse.Namespace], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=NAME, description="fleetops data service")
    parser.set_defaults(run=_serve)
    commands = parser.add_subparsers(title="commands")
    commands.add_parser("serve", help="serve the HTTP API (the default)").set_defaults(run=_serve)
    commands.add_parser("migrate", help="apply pending schema migrations").set_defaults(
        run=_migrate
    )
    commands.add_parser("seed", help="insert the local fleet's seed users and quotes").set_defaults(
        run=_seed
    )
    add_user = commands.add_parser(
        "add-user", help="create a user; the password is read from the first line of stdin"
    )
    add_user.add_argument("username")
    add_user.add_argument("role", choices=ROLES)
    add_user.set_defaults(run=_add_user)
    ensure_user = commands.add_parser(
        "ensure-user",
        help="create a user or reset its password and role (idempotent; e.g. the deploy smoke"
        " account); the password is read from the first line of stdin",
    )
    ensure_user.add_argument("username")
    ensure_user.add_argument("role", choices=ROLES)
    ensure_user.set_defaults(run=_ensure_user)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run: Command = args.run
    try:
        config = Config.from_env(os.environ)
    except ConfigError as exc:
        print(f"{NAME}: configuration error: {exc}", file=sys.stderr)
        return 2
    store = Store.from_config(config)
    try:
        return run(config, store, args)
    except _FAILURES as exc:
        print(f"{NAME}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
