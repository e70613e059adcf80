"""``python -m plugin report decisions [--since DATE] [--format text|json]
[--with-reasons]``: how clinicians decided on the suggestions.

For each record (its latest signed revision): how often the first suggested condition
became the working diagnosis (or another suggestion, or another condition, or none),
and how often each suggested referral was accepted, changed, dropped or left undecided,
and which were added. No patient, exam id, date or name is printed; the clinicians'
free-text reasons only with ``--with-reasons`` (they may identify someone). Exit 2: a
bad argument; 4: the database is unusable.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .cli_audit import since
from .cli_input import EXIT_DATABASE, EXIT_OK, say as _say



def add_parser(commands: Any) -> None:
    """Register ``report`` on the CLI's subcommands."""
    report = commands.add_parser(
        "report", help="reports without patient data (decisions)",
        description="Reports over the signed records of the database named by "
                    "DATABASE_URL, without patient data.")
    sub = report.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    decisions = sub.add_parser(
        "decisions", help="how clinicians decided on the suggested diagnoses and referrals",
        description="Count, over the latest revision of each signed record, how the "
                    "clinician's working diagnosis and referrals compare with the "
                    "suggestions. Exit 2: a bad argument; 4: the database is unusable.")
    decisions.add_argument("--since", metavar="DATE", type=since,
                           help="only records signed from DATE (ISO date or date-time "
                                "with a timezone)")
    decisions.add_argument("--format", choices=("text", "json"), default="text")
    decisions.add_argument("--with-reasons", action="store_true",
                           help="also list the clinicians' reasons (free text: may "
                                "identify a person)")


def run(args: argparse.Namespace) -> int:
    """The ``report decisions`` command."""
    from sqlalchemy.exc import SQLAlchemyError

    from .adapters import store as storage
    from .cli_input import prepared_app
    from .decision import decision_report

    app, code = prepared_app()
    if app is None:
        return code
    try:
        signed = storage.from_app(app).signed_impressions(args.since)
    except SQLAlchemyError as exc:  # the class name only
        _say(f"error: the database is unusable: {type(exc).__name__}")
        return EXIT_DATABASE
    from . import knowledge
    report = decision_report.build(app.extensions[knowledge.EXTENSION_KEY].decision, signed,
                                   with_reasons=args.with_reasons)
    if args.format == "json":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(decision_report.text(report))
    return EXIT_OK
