"""The Alembic migrations on both backends: they build exactly ``tables.metadata``, go
down and up again, and several processes upgrading one fresh database take turns."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc as sa_exc, inspect, text

from plugin.adapters import migrations, store as store_module
from plugin.adapters.store import Store, StoreError
from plugin.adapters.tables import metadata

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"patients", "exams", "revisions", "outbox", "launches", "cds_jtis", "ehr_servers",
          "audit_events", "users", "sessions", "setup_tokens", "login_failures",
          "api_clients", "api_tokens", "identities", "observations", "observation_codes",
          "frozen_inputs", "documents", "prom_responses"}
HEAD = ScriptDirectory.from_config(migrations.config(None)).get_current_head()


@pytest.fixture()
def store(database_url):
    store = Store(database_url)
    yield store
    store.dispose()


def current_revision(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def differences(store: Store) -> list:
    with store.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                metadata)


def test_there_is_one_head() -> None:
    assert HEAD == "0013"


def test_upgrade_builds_the_tables_on_an_empty_database(store) -> None:
    assert current_revision(store) is None
    store.upgrade()
    assert current_revision(store) == HEAD
    assert TABLES <= set(inspect(store.engine).get_table_names())
    store.upgrade()  # again: nothing to do
    assert current_revision(store) == HEAD


def test_the_migrated_schema_matches_the_table_definitions(store) -> None:
    store.upgrade()
    assert differences(store) == []


def test_the_comparison_sees_a_missing_schema(store) -> None:
    """Guards the drift check itself: on an empty database it must report every table."""
    added = {diff[1].name for diff in differences(store) if diff[0] == "add_table"}
    assert added == TABLES


def test_downgrade_to_base_then_upgrade_again(store) -> None:
    store.upgrade()
    with store.engine.begin() as conn:
        command.downgrade(migrations.config(conn), "base")
    assert current_revision(store) is None
    assert not TABLES & set(inspect(store.engine).get_table_names())
    store.upgrade()
    assert current_revision(store) == HEAD and differences(store) == []


def test_a_database_from_a_newer_version_is_a_store_error(store) -> None:
    store.upgrade()
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    with pytest.raises(StoreError, match="cannot upgrade the database"):
        store.upgrade()


UPGRADER = """
import sys, time
from plugin.adapters.store import Store
store = Store(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
store.upgrade()
store.dispose()
"""


def test_processes_upgrading_at_once_take_turns(database_url) -> None:
    """gunicorn workers or replicas starting together on a fresh database: all succeed,
    and the schema is built once (without the lock the losers die on CREATE TABLE)."""
    start_at = f"{time.time() + 1.2:.3f}"  # after the imports (~0.5 s), all at once
    children = [subprocess.Popen([sys.executable, "-c", UPGRADER, database_url, start_at],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(3)]
    results = [(child.wait(timeout=60), child.stderr.read()) for child in children]
    for child in children:
        child.stdout.close()
        child.stderr.close()
    assert [code for code, _ in results] == [0, 0, 0], [err for _, err in results]
    store = Store(database_url)
    try:
        assert current_revision(store) == HEAD and differences(store) == []
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        store.dispose()


def test_missing_server_binaries_fail_with_the_fix(monkeypatch) -> None:
    """The suite's PostgreSQL must be installed (scripts/setup): never a silent skip."""
    from tests.support import postgres

    monkeypatch.setattr(postgres, "BIN_GLOB", "/nonexistent/postgresql/*/bin")
    with pytest.raises(postgres.PostgresUnavailable,
                       match="PostgreSQL server binaries not found: run scripts/setup"):
        postgres.find_bindir()


def test_an_upgrade_refused_the_lock_at_once_tries_again(tmp_path, monkeypatch) -> None:
    """SQLite may answer "database is locked" without waiting (see ``Store.upgrade``):
    the upgrade asks again rather than stopping the process that starts."""
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    real, calls = migrations.upgrade, []

    def refused_once(conn):
        calls.append(1)
        if len(calls) == 1:
            raise sa_exc.OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
        return real(conn)

    monkeypatch.setattr(migrations, "upgrade", refused_once)
    store.upgrade()
    assert len(calls) == 2 and current_revision(store) == HEAD


def test_an_upgrade_refused_every_time_says_so(tmp_path, monkeypatch) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}")

    def refused(conn):
        raise sa_exc.OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))

    monkeypatch.setattr(migrations, "upgrade", refused)
    monkeypatch.setattr(store_module.time, "sleep", lambda seconds: None)
    with pytest.raises(StoreError, match="cannot upgrade the database: .*database is locked"):
        store.upgrade()
