"""The SQLAlchemy engine, tuned per backend, and the error an unusable database gives.

SQLite gets real transactions (writes BEGIN IMMEDIATE, WAL with synchronous=NORMAL,
foreign keys, a busy timeout); PostgreSQL pings a pooled connection that sat idle before
handing it out. On both, a pooled connection opened before a fork (gunicorn's master) is
never handed to a worker.
"""
from __future__ import annotations

import json
import os
import time
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from ..errors import PluginError

#: How long an SQLite writer waits for another's lock before giving up (ms). Writes
#: take milliseconds; this only has to outlast a burst of them or a migration.
SQLITE_BUSY_TIMEOUT_MS = 15_000
#: A pooled PostgreSQL connection idle longer than this is pinged before it is handed
#: out (seconds); one returned more recently is used as it is.
PING_AFTER_IDLE_SECONDS = 5.0
_WRITE = "plugin_write"  # execution option marking a write transaction (SQLite: IMMEDIATE)


class StoreError(PluginError):
    """The database URL is unusable, or the database cannot be reached or migrated."""


def writer(engine: Engine) -> Engine:
    """The same engine, its transactions marked as writes (SQLite: BEGIN IMMEDIATE)."""
    return engine.execution_options(**{_WRITE: True})


def create(url: str) -> Engine:
    """An engine tuned per backend; a URL that cannot work is a StoreError at once."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise StoreError("DATABASE_URL is not a database URL "
                         "(expected e.g. postgresql+psycopg://user@host/db)") from None
    if parsed.drivername == "postgresql":  # the driver installed with the service
        parsed = parsed.set(drivername="postgresql+psycopg")
    serializer = partial(json.dumps, ensure_ascii=False, allow_nan=False)
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed, json_serializer=serializer)
            _sqlite_events(engine)
        else:
            engine = create_engine(parsed, json_serializer=serializer)
            _ping_when_idle(engine)
    except (exc.NoSuchModuleError, ImportError) as error:
        raise StoreError("DATABASE_URL: unsupported database or driver "
                         f"{parsed.drivername!r}", original_error=error) from None
    except (exc.ArgumentError, TypeError, ValueError) as error:
        raise StoreError(f"DATABASE_URL: {first_line(error)}", original_error=error) from None
    _fork_guard(engine)
    return engine


def _sqlite_events(engine: Engine) -> None:
    """Real transactions on SQLite: Python's sqlite3 would start them only before DML, so a
    read followed by a write would not be atomic, and DDL would not be transactional.
    Writes (and migrations) begin IMMEDIATE: they queue for the write lock up front
    rather than fail half-way. WAL lets readers go on while one writer writes.

    ``synchronous = NORMAL`` (SQLite's recommendation for WAL): a commit appends to the
    WAL without waiting for fsync; the WAL is synced at each checkpoint. The database is
    never corrupted by a crash or power loss; a power loss (not a process crash: the
    operating system still holds the written pages) may lose the last transactions
    committed before it. With FULL every commit, and so every audited read, waited for
    an fsync: ~75 % of serving a stored PDF. A deployment that cannot accept that window
    uses PostgreSQL (README, Storage)."""
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL: see below
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _ping_when_idle(engine: Engine) -> None:
    """Pre-ping, but only a connection that sat in the pool for a while: the database
    may have restarted or dropped it since. SQLAlchemy's ``pool_pre_ping`` pings on
    every checkout, and a request checks out several times (the guard, the view, the
    audit write): a third of an audited read's time on PostgreSQL. A connection returned
    seconds ago is alive; if one still fails, SQLAlchemy invalidates the pool on that
    disconnect error (its optimistic handling), so one request answers 503, not many.
    A failed ping raises ``DisconnectionError``: the pool then opens a fresh connection
    (SQLAlchemy's recipe for custom pessimistic disconnect handling)."""
    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["returned"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned")
        if returned is not None and time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError("the pooled connection is gone") from error


def _fork_guard(engine: Engine) -> None:
    """A pooled connection opened before a fork (gunicorn's master) is never used by the
    child: two processes on one socket corrupt both sessions (SQLAlchemy's recipe)."""
    @event.listens_for(engine, "connect")
    def _connect(_dbapi_connection: Any, record: Any) -> None:
        record.info["pid"] = os.getpid()

    @event.listens_for(engine, "checkout")
    def _checkout(_dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get("pid") != os.getpid():
            record.dbapi_connection = proxy.dbapi_connection = None
            raise exc.DisconnectionError("connection opened in another process")


def first_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__
