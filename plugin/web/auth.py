"""Who may do what, decided in one place: a single ``before_request`` guard.

Every request resolves to an endpoint. An endpoint on ``OPEN`` needs no user; every
other one needs a signed-in user (a server-side session, ``adapters/sessions``) and, when
its view carries ``@requires(role)``, that role. The decorator only records the role on
the view; the guard enforces it, so a view cannot forget a check and a test can walk
``app.url_map`` against ``OPEN`` (tests/web/test_guard.py).

Refusals: a page without a user redirects to ``/login?next=…``; an autosave (JSON) gets
401 JSON the tablet script understands (it keeps the answers and asks to sign in); the
FHIR API gets 401 with an OperationOutcome and ``WWW-Authenticate``. A signed-in user
without the role gets 403: a page saying so, or an OperationOutcome. Under ``/fhir`` a
browser session may read; a write there with the session cookie must carry the CSRF
token too (the API is otherwise exempt from CSRF, being meant for token clients).

Token clients (SMART Backend Services integrators, ``web.api_access``): a request under
``/fhir`` with ``Authorization: Bearer`` is judged by its access token alone, against the
scope its view declares with ``@requires_scope(type, letter)`` beside the route (a
view under ``/fhir`` that declares none is refused to every token). Browser sessions
keep the role checks.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (Flask, Response, current_app, g, jsonify, redirect, render_template,
                   request, session, url_for)

from ..adapters import sessions, users
from ..core import audit_events, outcome, scopes
from ..core.audit_events import Actor
from . import api_access
from .audit import ACTOR_KEY, audited_read, current_actor
from .errors import FHIR_PREFIX, fhir_response
from .current import now as _now, store as _store

#: Endpoints anyone may reach. The CDS Hooks calls are open to the guard because each
#: is checked by its own signed JWT (web/cds_auth); static files are the app's own.
OPEN = frozenset({
    "signin.login", "signin.login_post", "signin.logout", "signin.setup",
    "signin.setup_post", "signin.health",
    "smart.launch", "smart.callback", "sso.start", "sso.callback", "oauth.token",
    "oauth.smart_configuration",
    "static", "exam.static",
    "fhir.metadata", "fhir.search_questionnaires", "fhir.read_questionnaire",
    "fhir.search_code_systems", "fhir.read_code_system",
    "fhir.search_structure_definitions", "fhir.read_structure_definition",
    "cds_hooks.discovery", "cds_hooks.call", "cds_hooks.feedback",
})
#: Patient mode (``web.prom_pages``): the only endpoints a session handed to a patient
#: reaches, each only for the PROM the session is bound to (its ``prom_id``), plus the
#: static files. Everything else is refused (403) and audited, open pages included.
PATIENT_MODE = frozenset({
    "proms.patient_question", "proms.patient_answer", "proms.save", "proms.finish",
    "proms.thanks", "proms.return_page", "proms.return_post", "static", "exam.static",
    "sso.callback",  # back from re-authenticating to leave patient mode
})
PATIENT_MODE_REFUSED = ("This tablet is in patient mode: only the questionnaire can be "
                        "used. Please hand the tablet back to your clinician.")
#: The session cookie's key holding the session token (the row is keyed by its hash).
SESSION_KEY = "sid"
REALM = 'Bearer realm="posterior-thigh-exam"'
SIGNED_OUT = "Your session has ended. Sign in again; nothing you entered is lost."

View = TypeVar("View", bound=Callable[..., Any])


def requires(role: str) -> Callable[[View], View]:
    """Declare the role a view needs, beside its route; the guard enforces it."""
    def mark(view: View) -> View:
        view.required_role = role  # type: ignore[attr-defined]
        return view
    return mark


def requires_scope(resource: str, permission: str) -> Callable[[View], View]:
    """Declare the SMART scope a FHIR API view needs from a token (``Observation``,
    ``s`` -> ``system/Observation.s`` or wider), beside its route; the guard enforces
    it (``web.api_access``)."""
    need = scopes.need(resource, permission)

    def mark(view: View) -> View:
        view.required_scope = need  # type: ignore[attr-defined]
        return view
    return mark


def current_user() -> users.User | None:
    """The signed-in user of this request (set by the guard), or None."""
    return g.get("user")


def actor(user: users.User) -> Actor:
    """The user as the audit trail and the signature name them."""
    return Actor(username=user.username, display=user.display_name,
                 practitioner_id=user.id if "clinician" in user.roles else None,
                 role=user.role)


def has_role(role: str) -> bool:
    """For templates: whether to show a button whose action needs ``role``."""
    user = current_user()
    return user is not None and role in user.roles


def patient_mode_prom() -> str | None:
    """The PROM this request's session was handed to the patient for, or None."""
    return g.get("patient_prom")


def resolve_user() -> users.User | None:
    """The user behind this request's session cookie, if the session is live."""
    token = session.get(SESSION_KEY)
    if not token:
        return None
    config = current_app.config
    live = sessions.current(_store(), token, now=_now(),
                            idle=dt.timedelta(minutes=float(config["SESSION_IDLE_MINUTES"])),
                            lifetime=dt.timedelta(hours=float(config["SESSION_LIFETIME_HOURS"])))
    if live is None:
        session.pop(SESSION_KEY, None)
        return None
    user = live.user
    if user is None or not user.active:
        sessions.end(_store(), token)
        session.pop(SESSION_KEY, None)
        return None
    g.patient_prom = live.patient_prom_id
    return user


def _guard() -> Response | None:
    endpoint = request.endpoint
    if endpoint is None:  # no such route (404) or method (405): nothing to protect
        return None
    if endpoint in OPEN:
        if endpoint != "signin.health":
            g.user = resolve_user()
            if g.user is not None:
                g.setdefault(ACTOR_KEY, actor(g.user))
            if patient_mode_prom() is not None:
                return _patient_mode(endpoint)
        return None
    api = request.path == FHIR_PREFIX or request.path.startswith(FHIR_PREFIX + "/")
    if api and "Authorization" in request.headers:  # a token client, never a session
        g.user = None
        view = current_app.view_functions[endpoint]
        return api_access.check(getattr(view, "required_scope", None))
    g.user = user = resolve_user()
    if user is not None:  # who the audit trail (web/audit) names for this request
        g.setdefault(ACTOR_KEY, actor(user))
    if user is None:
        return _unauthenticated(api)
    if patient_mode_prom() is not None:
        refused = _patient_mode(endpoint)
        if refused is not None:
            return refused
    if api and request.method not in ("GET", "HEAD") and current_app.config["WTF_CSRF_ENABLED"]:
        csrf = current_app.extensions["csrf"]
        csrf.protect()  # a session used for a write must prove it is our page
    view = current_app.view_functions[endpoint]
    role = getattr(view, "required_role", None)
    if role is not None and role not in user.roles:
        return _forbidden(api, role)
    return None


def _patient_mode(endpoint: str) -> Response | None:
    """In patient mode: None for the bound PROM's own pages, else the refusal (a page,
    JSON for a script's request, an OperationOutcome under /fhir), audited first."""
    bound = patient_mode_prom()
    if endpoint in PATIENT_MODE and (request.view_args or {}).get("prom_id", bound) == bound:
        return None
    interaction = "read" if request.method in ("GET", "HEAD") else "update"
    audited_read(interaction, actor=current_actor(), resource=f"QuestionnaireResponse/{bound}",
                 failure=audit_events.Failure(audit_events.MINOR_FAILURE, outcome.simple(
                     "error", "forbidden", "refused in patient mode: "
                     f"{request.method} {request.path}"[:300])))
    api = request.path == FHIR_PREFIX or request.path.startswith(FHIR_PREFIX + "/")
    if api:
        return _outcome(403, "forbidden", PATIENT_MODE_REFUSED)
    if request.is_json or request.method == "PUT" or \
            request.accept_mimetypes.best == "application/json":
        response = jsonify(error="patient-mode", message=PATIENT_MODE_REFUSED)
        response.status_code = 403
        return response
    from .prom_pages import patient_start

    return current_app.make_response((render_template(
        "exam/prom_refused.html", message=PATIENT_MODE_REFUSED,
        back=patient_start(bound), prom_id=bound), 403))


def _unauthenticated(api: bool) -> Response:
    if api:
        response = _outcome(401, "login", "Sign in, or send an access token.")
        response.headers["WWW-Authenticate"] = REALM
        return response
    if request.method not in ("GET", "HEAD") and (request.is_json or request.method == "PUT"):
        response = jsonify(error="signed-out", message=SIGNED_OUT,
                           login=url_for("signin.login"))
        response.status_code = 401
        return response
    target = request.full_path if request.method in ("GET", "HEAD") else _back()
    return redirect(url_for("signin.login", next=target.rstrip("?")),
                    303 if request.method not in ("GET", "HEAD") else 302)


def _back() -> str:
    """After a form posted while signed out: back to the page it came from (ours)."""
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc and referrer.netloc != request.host:
        return "/"
    return referrer.path or "/"


def _forbidden(api: bool, role: str) -> Response:
    message = f"This needs the {role} role; your account does not have it."
    if api:
        return _outcome(403, "forbidden", message)
    response = current_app.make_response((render_template("auth/forbidden.html",
                                                          message=message), 403))
    return response


def _outcome(status: int, code: str, message: str) -> Response:
    return fhir_response(outcome.simple("error", code, message), status)


def init_app(app: Flask) -> None:
    """Install the guard (after the boundary and CSRF hooks) and the template helpers."""
    app.before_request(_guard)
    app.jinja_env.globals.update(current_user=current_user, has_role=has_role,
                                 patient_mode_prom=patient_mode_prom)
