"""Broken copies of the knowledge: copy questionnaires/ and mappings/, damage one
thing, and see what loading says (a KnowledgeError naming the file and the place)."""
from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from plugin import knowledge
from plugin.config import DEFAULTS
from plugin.errors import KnowledgeError


def copy(tmp_path: Path) -> Path:
    """An untouched copy of the real knowledge under ``tmp_path``."""
    shutil.copytree(DEFAULTS["QUESTIONNAIRES_DIR"], tmp_path / "questionnaires")
    shutil.copytree(DEFAULTS["MAPPINGS_DIR"], tmp_path / "mappings")
    return tmp_path


def load_error(tmp_path: Path, corrupt: Callable[[Path], None]) -> KnowledgeError:
    """The error loading a copy damaged by ``corrupt`` raises (it must raise one)."""
    corrupt(copy(tmp_path))
    with pytest.raises(KnowledgeError) as caught:
        knowledge.load(tmp_path / "questionnaires", tmp_path / "mappings")
    return caught.value
