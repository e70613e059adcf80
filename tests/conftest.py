"""Shared fixtures: the real knowledge base, an app over it, and its test client."""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from plugin import create_app, knowledge
from plugin.adapters import store as storage
from plugin.config import DEFAULTS
from tests.support.conformance import IndependentValidator
from tests.support.keys import SIGNING_KEY

# Every app and CLI run of the tests signs with one test key (create_app loads the
# signing key at start-up): none writes a key into the checkout's instance folder.
DEFAULTS["SIGNING_KEY"] = SIGNING_KEY
os.environ.setdefault("PLUGIN_SIGNING_KEY", SIGNING_KEY)


@pytest.fixture(scope="session")
def kb():
    """The real questionnaires/ and mappings/, loaded and checked as at start-up."""
    return knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], DEFAULTS["MAPPINGS_DIR"])


@pytest.fixture(scope="session")
def form(kb):
    return kb.forms["posterior-thigh-exam"]


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    """One app for the session (loading the knowledge takes ~0.4 s), its database a
    throwaway SQLite file; tests that need isolation build their own app."""
    folder = tmp_path_factory.mktemp("app")
    return create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                       "DATABASE_URL": f"sqlite:///{folder / 'exam.sqlite3'}"})


@pytest.fixture()
def make_app(tmp_path):
    """Build an app with extra settings; its database and secret key live in tmp_path,
    never in the checkout's instance folder."""
    made = []

    def make(settings=None):
        app = create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                          "DATABASE_URL": f"sqlite:///{tmp_path / 'exam.sqlite3'}",
                          **(settings or {})})
        made.append(app)
        return app
    yield make
    for app in made:  # close pooled connections before the database is dropped
        storage.from_app(app).dispose()


@pytest.fixture()
def client(app):
    """A test client signed in as a clinician (every page and API route needs a user)."""
    from tests.support.signin import signed_in

    return signed_in(app)


@pytest.fixture()
def anonymous(app):
    """A test client nobody signed in."""
    return app.test_client()


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server on loopback for the whole session (started on first
    use, ~1 s). Missing server binaries fail the run: CI forbids skips."""
    from tests.support import postgres

    try:
        server = postgres.start()
    except postgres.PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database per test, on each backend the store supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture()
def store(database_url):
    """A migrated, empty store on SQLite and on the real PostgreSQL server (the storage
    and record tests)."""
    migrated = storage.Store(database_url)
    migrated.upgrade()
    yield migrated
    migrated.dispose()


@pytest.fixture()
def sqlite_store(tmp_path):
    """A migrated, empty store on a SQLite file in tmp_path."""
    migrated = storage.Store(f"sqlite:///{tmp_path / 'exam.sqlite3'}")
    migrated.upgrade()
    yield migrated
    migrated.dispose()


@pytest.fixture(scope="module")
def validator() -> Iterator[IndependentValidator]:
    """The independent FHIR validator (the Node process of ``tests/conformance``), one
    process per test module: starting it costs about a second."""
    with IndependentValidator() as v:
        yield v
