"""Signing in and out, the first account on a fresh installation, and the health check.

Sign-in gives one message for every failure (unknown user, wrong password, locked or
disabled account) after the same work (``users.authenticate``), starts a new
server-side session with a new token (the old cookie's session is ended and the cookie
cleared first, so a token planted before sign-in is worthless), and returns to the
page that asked for it. An address with too many recent failures waits (429).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from flask import (Blueprint, Response, current_app, jsonify, redirect, render_template,
                   request, session, url_for)
from sqlalchemy import text

from ..adapters import sessions, setup_link, store as store_mod, users
from ..core import passwords
from .auth import SESSION_KEY

bp = Blueprint("signin", __name__, template_folder="templates")

FAILED = ("The username or password is not right, or the account is locked. After "
          f"{users.MAX_FAILURES} failed attempts an account is locked for "
          f"{users.LOCK_MINUTES} minutes.")
THROTTLED = ("Too many failed sign-ins from this device. Wait "
             f"{users.ADDRESS_WINDOW_MINUTES} minutes, then try again.")


def _store() -> store_mod.Store:
    return store_mod.from_app(current_app)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _next() -> str:
    """Where to go after sign-in: a path on this site only (never ``//host``)."""
    target = request.values.get("next") or ""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("exam.patients")
    return target


def start_session(user: users.User) -> None:
    """A fresh session for ``user``: whatever the cookie held before is ended."""
    sessions.end(_store(), session.get(SESSION_KEY))
    session.clear()
    session[SESSION_KEY] = sessions.begin(_store(), user.id, now=_now())


@bp.get("/login")
def login() -> Any:
    return render_template("auth/login.html", next=_next(), message=None,
                           expired=request.args.get("expired") == "1", username="")


@bp.post("/login")
def login_post() -> Any:
    username = (request.form.get("username") or "")[:users.USERNAME_LENGTH + 1]
    password = (request.form.get("password") or "")[:passwords.MAX_LENGTH + 1]
    address = request.remote_addr
    if users.address_throttled(_store(), address, now=_now()):
        return render_template("auth/login.html", next=_next(), message=THROTTLED,
                               expired=False, username=username), 429
    user = users.authenticate(_store(), username, password, now=_now(), address=address)
    if user is None:  # the form again with its message (200: a page, not an API refusal)
        return render_template("auth/login.html", next=_next(), message=FAILED,
                               expired=False, username=username), 200
    start_session(user)
    return redirect(_next(), 303)


@bp.post("/logout")
def logout() -> Response:
    sessions.end(_store(), session.get(SESSION_KEY))
    session.clear()
    return redirect(url_for("signin.login"), 303)


@bp.get("/setup")
def setup() -> Any:
    token = request.args.get("token", "")
    if not setup_link.valid(_store(), token, now=_now()):
        return render_template("auth/setup_used.html"), 404
    return render_template("auth/setup.html", token=token, values={}, errors={})


@bp.post("/setup")
def setup_post() -> Any:
    token = request.form.get("token", "")
    values = {k: request.form.get(k, "") for k in ("username", "name", "identifier")}
    if not setup_link.valid(_store(), token, now=_now()):
        return render_template("auth/setup_used.html"), 404
    errors = _first_account_errors(values, request.form.get("password", ""))
    if errors:
        return render_template("auth/setup.html", token=token, values=values,
                               errors=errors), 422
    if not setup_link.redeem(_store(), token, now=_now()):
        return render_template("auth/setup_used.html"), 404
    user = users.add(_store(), values["username"], display_name=values["name"], role="admin",
                     also_clinician=True, identifier=values["identifier"] or None,
                     password=request.form.get("password", ""), now=_now())
    start_session(user)
    return redirect(url_for("exam.patients"), 303)


def _first_account_errors(values: dict[str, str], password: str) -> dict[str, list[str]]:
    """Field messages, checked before the link is used up (a typo costs nothing)."""
    errors: dict[str, list[str]] = {}
    try:
        name = users.check_username(values["username"])
    except users.UserError as exc:
        errors["username"], name = [exc.message], values["username"]
    if not values["name"].strip() or len(values["name"]) > users.NAME_LENGTH:
        errors["name"] = ["Enter your name as records should show it, e.g. Dr Ann Lee."]
    try:
        users.parse_identifier(values["identifier"] or None)
    except users.UserError as exc:
        errors["identifier"] = [exc.message]
    try:
        passwords.check(password, name)
    except passwords.PasswordRefused as exc:
        errors["password"] = [str(exc)]
    return errors


@bp.get("/health")
def health() -> Any:
    """For load balancers: the process answers and its database does."""
    try:
        with _store().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any database failure means "not healthy"
        response = jsonify(status="unavailable")
        response.status_code = 503
        return response
    return jsonify(status="ok")
