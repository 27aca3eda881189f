"""``python -m appliance.console``: serve the console, manage its users.

``serve`` brings the database's schema up to date, makes the first admin on a database without users (its
password written to ``DATA_DIR/first-run-password``, mode 0600, and never to a log), connects to the fleet's
broker in the background and serves until SIGINT/SIGTERM.  ``user add``/``user password`` manage accounts from
a shell (a password from ``--password-file`` or typed at the prompt, never on the command line).  This is an
edge: ApplianceError becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError, command_line

FIRST_ADMIN = "admin"


def _settings(args: argparse.Namespace) -> Any:
    from appliance.console.settings import load

    overrides = {"db": args.db, "listen": getattr(args, "listen", None), "data_dir": getattr(args, "data_dir", None),
                 "public_url": getattr(args, "public_url", None), "broker": getattr(args, "broker", None),
                 "ca_file": getattr(args, "ca", None), "cert_file": getattr(args, "cert", None),
                 "key_file": getattr(args, "key_file", None), "signing_key": getattr(args, "signing_key", None),
                 "log_level": getattr(args, "log_level", None), "topic_prefix": getattr(args, "topic_prefix", None)}
    if getattr(args, "no_tls", False):
        overrides["tls"] = False
    return load(args.config, overrides)


def schemas() -> list[Sequence[str]]:
    """Every console table's statements, in dependency order."""
    from appliance.console import auth, campaigns, commands, sharepage, web

    return [auth.SCHEMA, web.SCHEMA, commands.SCHEMA, campaigns.SCHEMA, sharepage.SCHEMA]


def routers() -> list[Any]:
    from appliance.console import accounts, campaigns, commands, fleet, insights, sharepage

    return [accounts.router, fleet.router, commands.router, campaigns.router, sharepage.router, insights.router]


def first_admin(conn: Any, data_dir: Path) -> Path | None:
    """On a database without users: ``admin`` with a random password written to a 0600 file; that file."""
    from appliance.console import auth
    from appliance.console.settings import FIRST_RUN_FILE

    if auth.has_users(conn):
        return None
    password = auth.new_password()
    auth.add_user(conn, FIRST_ADMIN, password, "admin")
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / FIRST_RUN_FILE
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(f"{FIRST_ADMIN}\n{password}\n")
    return path


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from appliance.console import analytics, commands
    from appliance.console.app import Console, create_app
    from appliance.console.db import Database
    from appliance.console.fleetlink import FleetLink
    from appliance.ops.push import BrokerOptions

    settings = _settings(args)
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db = Database(settings.db)
    console = Console(settings, db)
    try:
        db.migrate(schemas())
        with db.connection() as conn:
            analytics.backfill(conn, lambda line: print(f"console: {line}", file=sys.stderr, flush=True))
        with db.connection() as conn:
            created = first_admin(conn, settings.data_dir)
            commands.forget_screenshots(conn, console.clock())
        if created is not None:
            print(f"first run: user '{FIRST_ADMIN}' created; its password is in {created} (readable by this user "
                  "only): log in and change it under your account", file=sys.stderr)
        if settings.broker:
            options = BrokerOptions(settings.broker, settings.tls, settings.ca_file if settings.tls else None,
                                    settings.cert_file if settings.tls else None,
                                    settings.key_file if settings.tls else None, settings.topic_prefix)
            console.fleet = FleetLink(options, {commands.replies(settings.topic_prefix): lambda message: (
                commands.on_reply(console, message.topic, message.payload))}).start()
        app = create_app(console, routers())
        print(f"console: serving on http://{settings.listen} (public address {settings.public_url})",
              file=sys.stderr, flush=True)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                    proxy_headers=settings.proxy, forwarded_allow_ips="127.0.0.1" if settings.proxy else None,
                    server_header=False, access_log=settings.log_level == "debug")
    finally:
        if console.fleet is not None:
            console.fleet.stop()
        db.close()
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password_file is not None:
        try:
            return args.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ApplianceError(f"cannot read {args.password_file}: {exc.strerror}") from exc
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise ApplianceError("the two passwords differ")
    return first


def _user(args: argparse.Namespace) -> int:
    from appliance.console import auth
    from appliance.console.db import Database

    settings = _settings(args)
    db = Database(settings.db, max_size=1)
    try:
        db.migrate(schemas())
        with db.connection() as conn:
            if args.action == "add":
                auth.add_user(conn, args.name, _password(args), args.role)
                print(f"user {args.name} ({args.role}) added")
            else:
                auth.set_password(conn, args.name, _password(args))
                print(f"password of {args.name} changed; their sessions ended")
    finally:
        db.close()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m appliance.console", description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--config", type=Path, metavar="FILE", help="console.toml (keys as in the README)")
        sub.add_argument("--db", metavar="URL", help="postgresql://… (the database ingest fills)")

    serve = actions.add_parser("serve", help="serve the console")
    common(serve)
    serve.add_argument("--listen", metavar="HOST:PORT", help="where to listen (default 127.0.0.1:8600)")
    serve.add_argument("--data-dir", type=Path, metavar="DIR", help="campaign uploads and the first-run password")
    serve.add_argument("--public-url", metavar="URL", help="the console's address as phones and screens reach it")
    serve.add_argument("--broker", metavar="HOST:PORT", help="the fleet broker's operators' listener")
    serve.add_argument("--no-tls", action="store_true", help="plain TCP to the broker (development brokers only)")
    serve.add_argument("--ca", type=Path, metavar="FILE", help="CA of the broker's certificate")
    serve.add_argument("--cert", type=Path, metavar="FILE", help="the console's certificate (operators' CA)")
    serve.add_argument("--key-file", type=Path, metavar="FILE", help="the console certificate's key")
    serve.add_argument("--topic-prefix", metavar="TEMPLATE", help="the screens' [fleet] topic_prefix (default "
                       "oivis/v1/{device_id})")
    serve.add_argument("--signing-key", type=Path, metavar="FILE", help="the operator's campaign key (mode 0600)")
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="default info")
    serve.set_defaults(handler=_serve)

    user = actions.add_parser("user", help="add a user or set a password")
    user_actions = user.add_subparsers(dest="action", required=True)
    add = user_actions.add_parser("add", help="add a user")
    common(add)
    add.add_argument("name")
    add.add_argument("--role", choices=("viewer", "operator", "admin"), default="viewer")
    add.add_argument("--password-file", type=Path, metavar="FILE", help="read the password from FILE")
    password = user_actions.add_parser("password", help="set a user's password (ends their sessions)")
    common(password)
    password.add_argument("name")
    password.add_argument("--password-file", type=Path, metavar="FILE", help="read the password from FILE")
    for sub in (add, password):
        sub.set_defaults(handler=_user)

    trial = actions.add_parser("trial", help="a working trial on this machine (what `make console` runs): private "
                               "PostgreSQL, broker, ingest, simulated screens and the console")
    from appliance.console import trial as trial_module

    trial_module.add_arguments(trial)
    trial.set_defaults(handler=trial_module.run)
    return parser


@command_line
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.handler(args)
