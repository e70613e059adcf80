"""Reading the knowledge's JSON files: one place that turns a bad file into a
KnowledgeError naming the file and the line, so start-up stops with a useful message."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import KnowledgeError


def read_json(path: Path) -> Any:
    """The parsed JSON of ``path``; unreadable or invalid files raise KnowledgeError."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise KnowledgeError(str(path), f"line {exc.lineno} column {exc.colno}",
                             f"invalid JSON: {exc.msg}") from exc
    except OSError as exc:
        raise KnowledgeError(str(path), "", f"cannot read: {exc.strerror}") from exc
