"""What every CLI command does with its input files: read JSON, or say in one line why not.

A file that cannot be read, is not UTF-8, is not JSON or nests absurdly deep is a
``UsageError`` naming the file and the reason; the command prints it and exits 2.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


class UsageError(Exception):
    """A file or argument the CLI cannot use."""


def read_json(name: str) -> Any:
    """The JSON in file ``name`` (- = stdin); a UsageError says why it cannot be read."""
    from .core import pipeline

    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name} is not UTF-8 text") from exc
    try:
        data = json.loads(text)
        too_deep = pipeline.nests_deeper(data)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg})") from exc
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise UsageError(f"{name} is not JSON this tool can read: {exc}") from exc
    except RecursionError:  # deeper than Python's parser goes
        too_deep = True
    if too_deep:
        raise UsageError(f"{name} {pipeline.TOO_DEEP}")
    return data
