"""Shared fixtures: the real knowledge base, an app over it, and its test client."""
from __future__ import annotations

import pytest

from plugin import create_app, knowledge
from plugin.config import DEFAULTS


@pytest.fixture(scope="session")
def kb():
    """The real questionnaires/ and mappings/, loaded and checked as at start-up."""
    return knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], DEFAULTS["MAPPINGS_DIR"])


@pytest.fixture(scope="session")
def form(kb):
    return kb.forms["posterior-thigh-exam"]


@pytest.fixture(scope="session")
def app():
    """One app for the session: it is stateless, and loading the knowledge takes ~0.4 s."""
    return create_app({"TESTING": True})


@pytest.fixture()
def client(app):
    return app.test_client()
