"""``python -m plugin audit export [--since DATE]``: the audit trail as NDJSON on stdout.

One AuditEvent per line, oldest first, exactly as appended (``adapters.audit``), for an
auditor's tools or an archive. ``--since`` takes an ISO date (that day from 00:00 UTC)
or a date-time with a timezone; without it, the whole trail. Exit 2: a bad date; 4: the
database is unusable.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from typing import Any

from .cli_input import EXIT_DATABASE, EXIT_OK, say as _say



def add_parser(commands: Any) -> None:
    """Register ``audit`` on the CLI's subcommands."""
    audit = commands.add_parser(
        "audit", help="the audit trail (export)",
        description="Read the audit trail of the database named by DATABASE_URL.")
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    export = sub.add_parser(
        "export", help="write the AuditEvents as NDJSON to stdout",
        description="Write every AuditEvent recorded since DATE (all without --since) as "
                    "NDJSON to stdout, oldest first. Exit 2: a bad date; 4: the database "
                    "is unusable.")
    export.add_argument("--since", metavar="DATE", type=since,
                        help="ISO date (from 00:00 UTC) or date-time with a timezone")


def since(value: str) -> dt.datetime:
    """An argparse type: the moment ``--since`` names."""
    try:
        if len(value) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(),
                                       dt.timezone.utc)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO date (2026-12-01) or a date-time with a timezone "
            "(2026-12-01T08:00:00+00:00)")
    return moment


def run(args: argparse.Namespace) -> int:
    """The ``audit export`` command."""
    from sqlalchemy.exc import SQLAlchemyError

    from .adapters import audit, store as storage
    from .cli_input import prepared_app

    app, code = prepared_app()
    if app is None:
        return code
    engine = storage.from_app(app).engine
    try:
        count = audit.export(engine, args.since, sys.stdout)
        sys.stdout.flush()
    except SQLAlchemyError as exc:  # the class name only: the text may quote an event
        _say(f"error: the database is unusable: {type(exc).__name__}")
        return EXIT_DATABASE
    except BrokenPipeError:  # `| head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    _say(f"{count} audit events")
    return EXIT_OK
