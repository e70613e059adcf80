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
