"""Alembic migrations of the exam store, shipped inside the package so an installed
service can upgrade its own database (``python -m plugin db upgrade``).

There is no alembic.ini: ``config(connection)`` builds the configuration and hands the
connection to ``env.py``. To write a new revision, bring a scratch database to head and
let Alembic compare it with ``tables.metadata``::

    .venv/bin/python - <<'PY'
    from alembic import command
    from plugin.adapters import migrations
    from plugin.adapters.store import Store
    store = Store("sqlite:////tmp/scratch.sqlite3"); store.upgrade()
    with store.engine.begin() as conn:
        command.revision(migrations.config(conn), "what changed", autogenerate=True,
                         rev_id="0002")
    PY

then review the generated file (autogenerate misses renames and CHECK constraints) and
keep it portable: it runs on SQLite and PostgreSQL alike.
"""
from __future__ import annotations

import threading
import zlib
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

FOLDER = Path(__file__).resolve().parent
#: Key of the PostgreSQL advisory lock that serialises migrations across processes.
LOCK_KEY = zlib.crc32(b"posterior-thigh-exam:migrations")
#: Alembic installs its context as a module global while env.py runs: one migration at
#: a time per process (other processes are kept out by the database's lock).
_IN_PROCESS = threading.Lock()


def config(connection: Connection | None) -> Any:
    """Alembic's configuration: this folder, and the connection env.py must use (with
    whatever lock its caller holds)."""
    from alembic.config import Config

    result = Config()
    result.set_main_option("script_location", str(FOLDER))
    result.attributes["connection"] = connection
    return result


def upgrade(connection: Connection) -> None:
    """Migrate to head inside the caller's transaction, which commits it all at once.

    Several processes may start together on a fresh database; without a lock all but one
    would die on CREATE TABLE. PostgreSQL: an advisory lock held until commit. SQLite:
    the caller began the transaction IMMEDIATE, which holds the write lock; the others
    wait (busy timeout), then find the database at head and do nothing.
    """
    from alembic import command

    with _IN_PROCESS:
        if connection.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(LOCK_KEY)))
        command.upgrade(config(connection), "head")
