"""What every CLI command does with its input files: read JSON, or say in one line why not.

A file that cannot be read, or that the strict reader of outside JSON refuses
(``core.json_input``: not UTF-8, not JSON, too deep, non-finite numbers, NULs, lone
surrogates), is a ``UsageError`` naming the file and the reason; the command prints it
and exits 2.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

#: Exit codes shared by the commands (README "Command line"): done; bad input or a bad
#: argument; a broken data file; an unusable database or key.
EXIT_OK, EXIT_INPUT, EXIT_KNOWLEDGE, EXIT_UNUSABLE = 0, 2, 3, 4
EXIT_DATABASE = EXIT_UNUSABLE


class UsageError(Exception):
    """A file or argument the CLI cannot use."""


def read_json(name: str) -> Any:
    """A JSON file (``-``: stdin) read by the same strict reader as the API's bodies; a
    UsageError says in one line why it cannot be used."""
    from .core import json_input
    from .errors import InputError

    try:
        if name == "-":
            stdin = getattr(sys.stdin, "buffer", None)  # bytes: the reader checks UTF-8
            raw = stdin.read() if stdin is not None else sys.stdin.read()
        else:
            raw = Path(name).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from exc
    try:
        return json_input.parse(raw, json_input.printable(name))
    except InputError as exc:
        raise UsageError(exc.message.rstrip(".")) from exc


def prepared_app(prefix: str = "", *, migrate: bool = False) -> tuple[Any, int]:
    """The app as configured (its schema migrated when ``migrate`` and DATABASE_UPGRADE
    is off), or None and an exit code after one line saying why: a broken data file (3),
    an unusable database or signing key (4). Every command that needs the service's
    configuration opens it here, so none of them can end in a traceback."""
    from . import create_app, knowledge
    from .adapters import signing_key, store as storage
    from .errors import KnowledgeError
    from .record import observations

    try:
        app = create_app()
        if migrate and not app.config.get("DATABASE_UPGRADE", True):
            storage.from_app(app).upgrade()  # else create_app has just done it (and this)
            observations.backfill(storage.from_app(app),
                                  app.extensions[knowledge.EXTENSION_KEY])
    except KnowledgeError as exc:
        say(f"error: {prefix}broken data file: {exc}")
        return None, EXIT_KNOWLEDGE
    except (storage.StoreError, signing_key.SigningKeyError) as exc:
        say(f"error: {prefix}{exc.message}")
        return None, EXIT_UNUSABLE
    return app, 0


def say(line: str) -> None:
    """One line for the person at the terminal (stderr), apart from the command's output."""
    print(line, file=sys.stderr)


def print_rows(rows: list[dict[str, Any]], form: str, line: Any) -> None:
    """A listing as ``--format json`` (the rows) or text (``line(row)``, one per row,
    tab-separated by the caller): the users, clients and deliveries lists."""
    import json

    if form == "json":
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print(line(row))
