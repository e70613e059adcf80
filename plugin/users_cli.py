"""``python -m plugin users add|list|disable|set-password``: accounts from the console.

Passwords come only from standard input (``--password-stdin``: one line, the newline
dropped), never from an argument, which other users of the machine could read in the
process list. Bad input is one line on stderr and exit 2 (4: the database is unusable).

Each change (add, disable, set-password) leaves its AuditEvent in its own transaction
(``core.audit_events.user_administration``), named to the command line: no signed-in
user, the operator is whoever runs the command on the server.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from .cli_input import EXIT_DATABASE, EXIT_INPUT, EXIT_OK, print_rows, say as _say



def add_parser(commands: Any) -> None:
    users = commands.add_parser(
        "users", help="manage the people who sign in",
        description="Add, list and disable users, or set a password. Passwords: at "
                    "least 15 characters, not the username, not a common password. "
                    "Exit 2: bad input; 4: the database is unusable.")
    sub = users.add_subparsers(dest="users_command", required=True, metavar="SUBCOMMAND")
    add = sub.add_parser("add", help="add a user (password on stdin)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=("clinician", "assistant", "admin"))
    add.add_argument("--also-clinician", action="store_true",
                     help="an admin who also examines and signs")
    add.add_argument("--name", required=True, help='the name records show, e.g. "Dr Ann Lee"')
    add.add_argument("--identifier", metavar="SYSTEM|VALUE",
                     help="the Practitioner's identifier, e.g. "
                          "http://hl7.org/fhir/sid/us-npi|1234567893")
    add.add_argument("--password-stdin", action="store_true", required=True,
                     help="read the password from standard input")
    listing = sub.add_parser("list", help="list the users")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    disable = sub.add_parser("disable", help="disable a user and end their sessions")
    disable.add_argument("username")
    password = sub.add_parser("set-password", help="set a user's password (on stdin)")
    password.add_argument("username")
    password.add_argument("--password-stdin", action="store_true", required=True,
                          help="read the password from standard input")


def run(args: argparse.Namespace, app: Any) -> int:
    from .adapters import sessions, store as storage, users
    from .core import audit_events
    from .errors import UnavailableError

    store = storage.from_app(app)
    now = dt.datetime.now(dt.timezone.utc)

    def audited(change: Any) -> Any:
        return lambda user: [audit_events.user_administration(
            change, username=user.username, actor=None, address=None, recorded=now)]

    try:
        if args.users_command == "add":
            user = users.add(store, args.username, display_name=args.name, role=args.role,
                             also_clinician=args.also_clinician,
                             identifier=args.identifier, password=_password(), now=now,
                             audit=audited("add"))
            _say(f"added {user.username} ({', '.join(sorted(user.roles))})")
        elif args.users_command == "list":
            _list(users.all_users(store), args.format)
        elif args.users_command == "disable":
            user = users.disable(store, args.username, now=now, audit=audited("disable"))
            ended = sessions.end_all(store, user.id)
            _say(f"disabled {user.username}; {ended} session(s) ended")
        else:
            user = users.set_password(store, args.username, _password(), now=now,
                                      audit=audited("set-password"))
            ended = sessions.end_all(store, user.id)
            _say(f"password set for {user.username}; {ended} session(s) ended")
    except users.UserError as exc:
        _say(f"error: {exc.message}")
        return EXIT_INPUT
    except (storage.StoreError, UnavailableError) as exc:  # no audit, no change
        _say(f"error: {exc.message}")
        return EXIT_DATABASE
    return EXIT_OK


def _password() -> str:
    from .adapters.users import UserError

    line = sys.stdin.readline()
    if not line:
        raise UserError("no password on standard input (pipe it in: --password-stdin)")
    return line.rstrip("\r\n")


def _list(found: list[Any], form: str) -> None:
    rows = [{"username": u.username, "name": u.display_name, "roles": sorted(u.roles),
             "active": u.active,
             "identifier": (f"{u.identifier_system}|{u.identifier_value}"
                            if u.identifier_system else None)} for u in found]
    print_rows(rows, form, lambda row: f"{row['username']}\t{row['name']}\t"
               f"{','.join(row['roles'])}\t{'active' if row['active'] else 'disabled'}\t"
               f"{row['identifier'] or ''}")
