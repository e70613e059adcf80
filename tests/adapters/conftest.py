"""Fixtures of the storage tests: a migrated store on each backend, or on SQLite alone."""
from __future__ import annotations

import pytest

from plugin.adapters.store import Store


@pytest.fixture()
def store(database_url):
    """A migrated, empty store on SQLite and on the real PostgreSQL server."""
    store = Store(database_url)
    store.upgrade()
    yield store
    store.dispose()


@pytest.fixture()
def sqlite_store(tmp_path):
    """A migrated, empty store on a SQLite file in tmp_path."""
    store = Store(f"sqlite:///{tmp_path / 'exam.sqlite3'}")
    store.upgrade()
    yield store
    store.dispose()
