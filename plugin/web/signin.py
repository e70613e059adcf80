"""Signing in and out, the first account on a fresh installation, and the health check.

Sign-in gives one message for every failure (unknown user, wrong password, locked or
disabled account) after the same work (``users.authenticate``), starts a new
server-side session with a new token (the old cookie's session is ended and the cookie
cleared first, so a token planted before sign-in is worthless), and returns to the
page that asked for it. An address with too many recent failures waits (429).

Each sign-in, failed sign-in (an unknown user and a wrong password alike: the name typed,
never the password; a throttled address too), sign-out and first-account creation
leaves its AuditEvent (``core.audit_events``: login, logout, user_administration; the
lock-out's is written by ``users`` with the failure that locks). If the event cannot be
written the sign-in does not happen (503): no session begins unaudited.
"""
from __future__ import annotations

from typing import Any

from flask import (Blueprint, Response, jsonify, redirect, render_template,
                   request, session, url_for)
from sqlalchemy import text

from ..adapters import audit, sessions, setup_link, users
from ..core import audit_events, outcome, passwords
from .auth import SESSION_KEY, actor, current_user
from .current import now as _now, store as _store

bp = Blueprint("signin", __name__, template_folder="templates")

FAILED = ("The username or password is not right, or the account is locked. After "
          f"{users.MAX_FAILURES} failed attempts an account is locked for "
          f"{users.LOCK_MINUTES} minutes.")
THROTTLED = ("Too many failed sign-ins from this device. Wait "
             f"{users.ADDRESS_WINDOW_MINUTES} minutes, then try again.")


def next_path() -> str:
    """Where to go after sign-in: a path on this site only (never ``//host``)."""
    target = request.values.get("next") or ""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("exam.patients")
    return target


def _failure(message: str) -> audit_events.Failure:
    """A refused sign-in, as its AuditEvent records it (the page's own words)."""
    return audit_events.Failure(audit_events.MINOR_FAILURE,
                                outcome.simple("error", "security", message))


def audit_login(username: str, user: users.User | None, message: str | None) -> None:
    """The sign-in's AuditEvent, committed before anything is answered."""
    audit.write(_store().engine, audit_events.login(
        username=username, actor=actor(user) if user else None, address=request.remote_addr,
        recorded=_now(), failure=_failure(message) if message else None))


def start_session(user: users.User, *, keep: tuple[str, ...] = ()) -> None:
    """A fresh session for ``user``: whatever the cookie held before is ended (but the
    ``keep`` keys: this browser's other pending launches)."""
    kept = {key: session[key] for key in keep if key in session}
    sessions.end(_store(), session.get(SESSION_KEY))
    session.clear()
    session.update(kept)
    session[SESSION_KEY] = sessions.begin(_store(), user.id, now=_now())


@bp.get("/login")
def login() -> Any:
    return render_template("auth/login.html", next=next_path(), message=None,
                           expired=request.args.get("expired") == "1", username="")


@bp.post("/login")
def login_post() -> Any:
    username = (request.form.get("username") or "")[:users.USERNAME_LENGTH + 1]
    password = (request.form.get("password") or "")[:passwords.MAX_LENGTH + 1]
    address = request.remote_addr
    if users.address_throttled(_store(), address, now=_now()):
        audit_login(username, None, THROTTLED)
        return render_template("auth/login.html", next=next_path(), message=THROTTLED,
                               expired=False, username=username), 429
    user = users.authenticate(_store(), username, password, now=_now(), address=address)
    if user is None:  # the form again with its message (200: a page, not an API refusal)
        audit_login(username, None, FAILED)  # unknown and wrong alike; never the password
        return render_template("auth/login.html", next=next_path(), message=FAILED,
                               expired=False, username=username), 200
    audit_login(user.username, user, None)
    start_session(user)
    return redirect(next_path(), 303)


@bp.post("/logout")
def logout() -> Response:
    user = current_user()
    if user is not None:  # a sign-out of a live session (an ended one has nothing to end)
        audit.write(_store().engine, audit_events.logout(
            actor=actor(user), address=request.remote_addr, recorded=_now()))
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
                     password=request.form.get("password", ""), now=_now(),
                     audit=lambda new: [audit_events.user_administration(
                         "add", username=new.username, actor=actor(new),
                         address=request.remote_addr, recorded=_now())])
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
