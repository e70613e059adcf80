"""Fixtures of the storage tests: a migrated store on each backend."""
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
