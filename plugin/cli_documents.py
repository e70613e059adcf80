"""``python -m plugin documents --pending [--watch]``: render the documents of signed
revisions that wait for them (``record.freeze.render_pending``).

``serve`` already runs a renderer beside its web workers (``web.serving``), so nobody
needs this to get documents; it is for a deployment that turns that off
(``DOCUMENTS_RENDERER=false``) and runs renderers of its own, and for an operator who
wants pending renders done now. A render left half-done by a dead process is taken
again once its lease (``DOCUMENTS_LEASE_SECONDS``) has run out. Exit 4: the database
is unusable.
"""
from __future__ import annotations

import argparse
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from .cli_input import EXIT_DATABASE, EXIT_OK, say as _say



def add_parser(commands: Any) -> None:
    """Register ``documents`` on the CLI's subcommands."""
    documents = commands.add_parser(
        "documents", help="render signed revisions' pending documents (PDFs)",
        description="Render the clinician summary, the patient handout and its large "
                    "print of every signed revision still waiting for them, from the "
                    "inputs frozen at its signature. Exit 4: the database is unusable.")
    documents.add_argument("--pending", action="store_true", required=True,
                           help="render what is pending, then exit (with --watch: keep "
                                "watching for new signatures)")
    documents.add_argument("--watch", action="store_true",
                           help="keep running, rendering each new signature's documents")


def run(args: argparse.Namespace) -> int:
    """The ``documents --pending`` command."""
    from sqlalchemy.exc import SQLAlchemyError

    from .adapters import store as storage
    from .cli_input import prepared_app

    app, code = prepared_app("cannot render, ")
    if app is None:
        return code
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    try:
        count = loop(storage.from_app(app), app.config, worker_id=worker_id,
                     watch=args.watch)
    except SQLAlchemyError as exc:  # the class name only: the text may quote data
        _say(f"error: the database is unusable: {type(exc).__name__}")
        return EXIT_DATABASE
    _say(f"documents rendered for {count} signed revisions")
    return EXIT_OK


def loop(store: Any, config: Any, *, worker_id: str, watch: bool,
         alive: Callable[[], bool] | None = None) -> int:
    """Render what is pending; with ``watch``, then poll every DOCUMENTS_POLL_SECONDS
    for ever (the renderer process ``serve`` runs), or until ``alive()`` says the
    process that started it is gone. How many revisions were rendered."""
    from .record import freeze

    lease = float(config.get("DOCUMENTS_LEASE_SECONDS") or 120)
    poll = float(config.get("DOCUMENTS_POLL_SECONDS") or 0.5)
    count = 0
    while True:
        count += freeze.render_pending(store, worker_id=worker_id, lease_seconds=lease)
        if not watch or (alive is not None and not alive()):
            return count
        time.sleep(poll)
