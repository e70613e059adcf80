"""Secrets the service makes for itself once and keeps in the instance folder (mode 0600).

The session secret (``web.security``) and the signing key (``signing_key``) are both
generated on first start when the configuration gives none, and every process must then
use the same one: a second gunicorn worker signing with another key would break every
open form, or every signature check.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, generate: Callable[[], str],
                   read: Callable[[Path], str]) -> tuple[str, bool]:
    """(the content of ``path`` as ``read`` returns it, whether it was created now).

    Creation is atomic: the content is written to a private temporary file which is then
    hard-linked to ``path``; ``link`` never replaces an existing file, so when two
    processes start together exactly one wins, the other reads its file, and no process
    can ever read a half-written one.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        return read(path), False
    except FileNotFoundError:
        pass
    content = generate()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as sink:
            sink.write(content)
            sink.flush()
            os.fsync(sink.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:  # another process won the race: use its file
            return read(path), False
        return read(path), True
    finally:
        temporary.unlink(missing_ok=True)
