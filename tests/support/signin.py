"""Signing a test client in, as a person would be: a real account (Argon2id hash, in
the app's database) and a real server-side session in the client's cookie.

``signed_in(app, role)`` returns a test client signed in as the role's test user
(created once per database). With CSRF on, the client also sends the page's CSRF token
in ``X-CSRFToken`` on every request, as the tablet's script does, so API writes under
a browser session pass the guard's CSRF check.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from plugin.adapters import sessions, store as store_mod, users
from plugin.web.auth import SESSION_KEY

PASSWORD = "a long test passphrase for the ward"
NAMES = {"clinician": "Dr Ann Lee", "assistant": "Sam Assistant", "admin": "Pat Admin"}


def user(app: Flask, role: str = "clinician", *, username: str | None = None,
         also_clinician: bool = False) -> users.User:
    """The test user for ``role`` in ``app``'s database, created on first use."""
    store = store_mod.from_app(app)
    name = username or f"test-{role}{'-clinician' if also_clinician else ''}"
    existing = users.by_username(store, name)
    if existing is not None:
        return existing
    return users.add(store, name, display_name=NAMES[role], role=role, password=PASSWORD,
                     also_clinician=also_clinician, now=dt.datetime.now(dt.timezone.utc))


def signed_in(app: Flask, role: str = "clinician", *, client: FlaskClient | None = None,
              csrf_header: bool = True, base_url: str = "http://localhost",
              **options: Any) -> FlaskClient:
    """A client of ``app`` signed in as the test user for ``role`` (``csrf_header``
    False: it sends no CSRF token unless a test gives one, for the CSRF tests)."""
    account = user(app, role, **options)
    client = client or app.test_client()
    token = sessions.begin(store_mod.from_app(app), account.id,
                           now=dt.datetime.now(dt.timezone.utc))
    if csrf_header and app.config.get("WTF_CSRF_ENABLED", True):
        page = client.get("/login", base_url=base_url).get_data(as_text=True)
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
        assert csrf, "the sign-in page carries no CSRF token"
        client.environ_base["HTTP_X_CSRFTOKEN"] = csrf.group(1)
    with client.session_transaction(base_url=base_url) as cookie:
        cookie[SESSION_KEY] = token
    return client


def log_in(client: FlaskClient, username: str, password: str = PASSWORD,
           next_: str | None = None) -> Any:
    """POST the sign-in form as a person does (with the page's CSRF token)."""
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    data = {"username": username, "password": password}
    if csrf:
        data["csrf_token"] = csrf.group(1)
    if next_:
        data["next"] = next_
    return client.post("/login", data=data)
