"""Single sign-on with hospital OpenID Connect providers, and the re-authentication
before a signature for people who sign in elsewhere (a provider or an EHR launch).

``GET /sso/<name>`` → the provider's authorize endpoint (code flow, PKCE S256, state,
nonce) → ``GET /sso/callback`` → the code exchanged, the id token verified
(``adapters.id_tokens``: signature, iss, aud = our client id, exp, nonce) → the person
matched on (issuer, sub) (``adapters.identities``), created on first sign-in only when
the provider's ``create_users`` allows, their role taken from the provider's claim → a
new server-side session exactly as the password sign-in starts one
(``signin.start_session``), and the sign-in audited the same way.

Signing an exam (21 CFR 11.200) needs the signer to authenticate again. A user with a
provider identity is sent back to it with ``prompt=login`` and/or ``max_age=0`` (the
provider's ``step_up``), a launched user to the EHR with ``prompt=login``; the id
token that comes back must name the same person and carry an ``auth_time`` no older
than the request, and that ``auth_time`` is the signature's ``authenticated_at``. The
answers being signed are the exam's stored working answers; only the exam id and the
version they were at travel with the round trip, so nothing is lost and a change made
meanwhile on another tablet is refused as a conflict, as with the password.

Pending authorizations (state, nonce, PKCE verifier, what to do on return) wait in
the session cookie, as Authlib's Flask client keeps them, but sealed (``launches.Sealer``,
a key derived from SECRET_KEY), so the browser holds them without reading them: single
use, this browser only, at most ``MAX_PENDING``, expired after
``SMART_AUTHORIZE_SECONDS``.
Tokens from the provider are never kept: only the verified claims are used.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from flask import (Blueprint, Flask, abort, current_app, redirect, render_template, request,
                   session, url_for)

from ..adapters import id_tokens, identities, launches, oidc, smart, users
from ..core import audit_events
from ..errors import PluginError
from . import exam as exam_views, launch_signin, signin
from .auth import PATIENT_MODE_REFUSED, actor, current_user, patient_mode_prom, requires
from .current import now as _now, store as _store

bp = Blueprint("sso", __name__, template_folder="templates")

PENDING = "oidc_pending"
MAX_PENDING = 5
SCOPE = "openid profile email"
NOT_STARTED = ("This sign-in was not started in this browser, was already used, or took "
               "too long. Start again.")
NO_USER = ("Your hospital account is not set up for this app yet, and this provider may "
           "not create accounts. Ask your administrator to add you.")


class ProviderSettingError(PluginError):
    """``OIDC_PROVIDERS`` is unusable; the message names the entry and the fault."""


def init_app(app: Flask) -> None:
    """Register the blueprint once ``OIDC_PROVIDERS`` is known to be usable: a typo in
    a provider's settings stops start-up, never a clinician's sign-in."""
    try:
        oidc.providers_from(app.config.get("OIDC_PROVIDERS") or [])
    except ValueError as error:
        raise ProviderSettingError(f"OIDC_PROVIDERS: {error}") from None
    app.register_blueprint(bp)


def providers() -> dict[str, oidc.Provider]:
    """``OIDC_PROVIDERS`` (checked at start-up), by name."""
    return oidc.providers_from(current_app.config.get("OIDC_PROVIDERS") or [])


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"sso_providers": lambda: sorted(providers().values(), key=lambda p: p.label),
            "step_up_label": step_up_label}


# -- sign-in -----------------------------------------------------------------------------

@bp.get("/sso/<name>")
def start(name: str) -> Any:
    """Send the browser to provider ``name`` to sign in."""
    provider = providers().get(name)
    if provider is None:
        return _refused("There is no such sign-in provider.", 404)
    try:
        endpoints = oidc.discover(provider.issuer, timeout=_timeout())
    except oidc.OidcError as error:
        return _refused(f"Signing in with {provider.label} is not possible now: "
                        f"{error.message}.", 502)
    return redirect(_authorize(endpoints, provider.client_id, scope=SCOPE, extra=None,
                               pending={"purpose": "login", "provider": name,
                                        "next": signin.next_path()}), 302)


@bp.get("/sso/callback")
def callback() -> Any:
    """The provider's answer: a code (exchanged and verified), or an error in words."""
    pending = _take(request.args.get("state") or "")
    if pending is None:
        return _refused(NOT_STARTED, 400)
    if patient_mode_prom() is not None and pending["purpose"] != "patient-return":
        return _refused(PATIENT_MODE_REFUSED, 403)  # only the way back out of it
    if request.args.get("error"):
        what = {"sign": "The exam was not signed",
                "patient-return": "The tablet stays in patient mode"}.get(
                    pending["purpose"], "The sign-in was not completed")
        return _refused(f"{what}: {_words(request.args.get('error'))}.", 403)
    code = request.args.get("code")
    if not code:
        return _refused("The sign-in's answer had no authorization code.", 400)
    if pending["purpose"] == "sign" and not _same_signer(pending):
        return _refused("You were signed out before the signature was confirmed; the "
                        "exam was not signed. Sign in and sign it again.", 403)
    try:
        claims = _verified(pending, code)
    except PluginError as error:
        if pending["purpose"] == "patient-return":
            return _refused(f"The tablet stays in patient mode: {error.message}.", 403)
        if pending["purpose"] == "sign":
            return exam_views.review_again(pending["exam_id"], "The exam was not signed: "
                                           f"{error.message}.", 403)
        _audit_login(f"({pending.get('provider')})", None, error.message)
        return _refused(f"The sign-in was refused: {error.message}.", 403)
    if pending["purpose"] == "sign":
        return _finish_signature(pending, claims)
    if pending["purpose"] == "patient-return":
        return _finish_return(pending, claims)
    return _sign_in(providers()[pending["provider"]], claims, pending.get("next") or "/")


def _sign_in(provider: oidc.Provider, claims: id_tokens.IdClaims, next_: str) -> Any:
    store, now = _store(), _now()
    role = provider.role_for(claims.claims)
    attempt = claims.text("preferred_username") or claims.subject
    user = identities.find(store, claims.issuer, "oidc", claims.subject)
    if role is None:
        message = (f"Your {provider.label} account has no role in this app "
                   f"(nothing in its {provider.role_claim!r} claim maps to one).")
        _audit_login(attempt, user, message)
        return _refused(message, 403)
    if user is None:
        if not provider.create_users:
            _audit_login(attempt, None, NO_USER)
            return _refused(NO_USER, 403)
        user = identities.link_new_user(
            store, issuer=claims.issuer, kind="oidc", subject=claims.subject,
            display_name=claims.name or attempt, role=role, username_hint=attempt, now=now,
            audit=lambda new: [audit_events.user_administration(
                "add", username=new.username, actor=actor(new), address=request.remote_addr,
                recorded=now)])
    if not user.active:
        message = "This account is disabled. Ask your administrator."
        _audit_login(user.username, None, message)
        return _refused(message, 403)
    user = identities.set_role(store, user, role, now=now, audit=lambda changed: [
        audit_events.user_administration("role", username=changed.username,
                                         actor=actor(changed),
                                         address=request.remote_addr, recorded=now)])
    _audit_login(user.username, user, None)
    signin.start_session(user)
    return redirect(next_, 303)


def _audit_login(username: str, user: users.User | None, message: str | None) -> None:
    signin.audit_login(username[:users.USERNAME_LENGTH], user, message)


# -- re-authentication before a signature -------------------------------------------------

@bp.post("/exams/<exam_id>/sign/elsewhere")
@requires("clinician")
def step_up(exam_id: str) -> Any:
    """Re-authenticate at the user's identity provider (or EHR), then sign."""
    user = current_user()
    assert user is not None
    try:
        version = int(request.form.get("version", ""))
    except ValueError:
        abort(400, "The form is missing its version; reload the page.")
    if _step_up_target(user) is None:
        return exam_views.review_again(exam_id, _cannot_sign(user), 422)
    try:
        url = _reauthorize(user, {"purpose": "sign", "exam_id": exam_id, "version": version})
    except (PluginError, smart.SmartError, ValueError) as error:
        words = error.message if isinstance(error, PluginError) else str(error)
        return exam_views.review_again(exam_id, "The exam was not signed: your sign-in "
                                       f"service could not be reached ({words}).", 502)
    # a page that moves on by itself, not a redirect: the form's CSP (form-action 'self')
    # forbids a form post to be redirected to another site
    return render_template("auth/sso_continue.html", url=url, label=step_up_label(user))


def _reauthorize(user: users.User, pending: dict[str, Any]) -> str:
    """The URL where ``user`` authenticates again (``_step_up_target``, which must
    exist), for ``pending`` (its purpose and what to finish when they come back)."""
    target = _step_up_target(user)
    assert target is not None
    kind, key, identity = target
    pending = {**pending, "user_id": user.id, "kind": kind, "key": key,
               "issuer": identity.issuer, "subject": identity.subject}
    if kind == "provider":
        provider = providers()[key]
        endpoints = oidc.discover(provider.issuer, timeout=_timeout())
        return _authorize(endpoints, provider.client_id, scope=SCOPE,
                          extra=oidc.STEP_UP[provider.step_up], pending=pending)
    client, config = _ehr(key)
    return _authorize(oidc.from_smart(config), client.client_id, scope="openid fhirUser",
                      extra={"prompt": "login", "aud": key}, pending=pending)


def patient_return(user: users.User, prom_id: str) -> Any:
    """Leaving patient mode for a user without a local password: the continue page to
    their identity provider (or EHR), which must ask them again, like a signature; None
    when they have nowhere to authenticate again."""
    if _step_up_target(user) is None:
        return None
    url = _reauthorize(user, {"purpose": "patient-return", "prom_id": prom_id})
    return render_template("auth/sso_continue.html", url=url, label=step_up_label(user))


def _finish_return(pending: Mapping[str, Any], claims: id_tokens.IdClaims) -> Any:
    """Back from re-authenticating to leave patient mode: the same person, freshly
    authenticated, takes the tablet back; anyone else leaves it in patient mode."""
    from . import prom_pages

    user = current_user()
    subject = claims.subject if pending["kind"] == "provider" else \
        launch_signin.absolute(claims.fhir_user or "", pending["key"])
    if user is None or user.id != pending["user_id"] or \
            claims.issuer != pending["issuer"] or subject != pending["subject"]:
        return _refused("The tablet stays in patient mode: another person confirmed who "
                        "they are than the one signed in here.", 403)
    return prom_pages.returned(pending["prom_id"])


def step_up_label(user: users.User | None) -> str | None:
    """For the review page: where ``user`` re-authenticates to sign, in words, or None
    (then the local password, if they have one)."""
    target = _step_up_target(user) if user is not None else None
    if target is None:
        return None
    kind, key, _ = target
    return providers()[key].label if kind == "provider" else "your EHR"


def _step_up_target(user: users.User) -> tuple[str, str, identities.Identity] | None:
    """Where the user can authenticate again: a configured provider that steps up, else
    a configured EHR they launched from."""
    configured = providers()
    by_issuer = {p.issuer: p for p in configured.values() if p.step_up != "none"}
    ehrs = smart.clients_by_base(current_app.config.get("SMART_CLIENTS") or {})
    for identity in identities.of_user(_store(), user.id):
        if identity.kind == "oidc" and identity.issuer in by_issuer:
            return "provider", by_issuer[identity.issuer].name, identity
        if identity.kind == "fhirUser":
            base = next((b for b in ehrs if identity.subject.startswith(b + "/")), None)
            if base is not None:
                return "ehr", base, identity
    return None


def _cannot_sign(user: users.User) -> str:
    return ("The exam was not signed: signing needs you to confirm who you are, and "
            "your account has no password here and no sign-in service that can ask "
            "you again. Ask your administrator to set a password for "
            f"{user.username}.")


def _same_signer(pending: Mapping[str, Any]) -> bool:
    """Whether the person who asked to sign is still the one signed in here, and may."""
    user = current_user()
    return user is not None and user.id == pending["user_id"] and "clinician" in user.roles


def _finish_signature(pending: Mapping[str, Any], claims: id_tokens.IdClaims) -> Any:
    user = current_user()
    assert user is not None  # _same_signer
    exam_id = pending["exam_id"]
    subject = claims.subject if pending["kind"] == "provider" else \
        launch_signin.absolute(claims.fhir_user or "", pending["key"])
    if claims.issuer != pending["issuer"] or subject != pending["subject"]:
        return exam_views.review_again(
            exam_id, "The exam was not signed: another person confirmed the signature "
            "than the one signed in here.", 403)
    assert claims.auth_time is not None  # verify() required a fresh one
    return exam_views.complete_signature(exam_id, user, claims.auth_time,
                                         int(pending["version"]))


# -- the round trip ------------------------------------------------------------------------

def _authorize(endpoints: oidc.Endpoints, client_id: str, *, scope: str,
               extra: Mapping[str, str] | None, pending: dict[str, Any]) -> str:
    """Start an authorization; the URL to send the browser to."""
    started = oidc.authorization(endpoints, client_id, redirect_uri=redirect_uri(),
                                 scope=scope, extra=extra)
    waiting = dict(session.get(PENDING) or {})
    waiting[started.state] = _sealer().seal(json.dumps({
        **pending, "nonce": started.nonce, "verifier": started.code_verifier,
        "started": _now().timestamp(), "endpoints": [
            endpoints.issuer, endpoints.authorization_endpoint, endpoints.token_endpoint,
            endpoints.jwks_uri]}))
    session[PENDING] = dict(list(waiting.items())[-MAX_PENDING:])
    return started.url


def _take(state: str) -> dict[str, Any] | None:
    waiting = dict(session.get(PENDING) or {})
    sealed = waiting.pop(state, None) if state else None
    session[PENDING] = waiting
    opened = _sealer().open(sealed) if isinstance(sealed, str) else None
    if opened is None:
        return None
    pending = json.loads(opened)
    age = _now().timestamp() - float(pending["started"])
    return pending if age <= float(current_app.config["SMART_AUTHORIZE_SECONDS"]) else None


def _verified(pending: Mapping[str, Any], code: str) -> id_tokens.IdClaims:
    """Exchange ``code`` and verify the id token that comes with it."""
    endpoints = oidc.Endpoints(*pending["endpoints"])
    if pending.get("kind") == "ehr":
        client, _ = _ehr(pending["key"])
        answer = oidc.exchange(endpoints, client.client_id, code=code,
                               redirect_uri=redirect_uri(), code_verifier=pending["verifier"],
                               timeout=_timeout(), key=client.key)
        client_id = client.client_id
    else:
        provider = providers().get(pending.get("provider") or pending.get("key") or "")
        if provider is None:
            raise oidc.OidcError("this sign-in provider is no longer set up")
        answer = oidc.exchange(endpoints, provider.client_id, code=code,
                               redirect_uri=redirect_uri(), code_verifier=pending["verifier"],
                               timeout=_timeout(), client_secret=provider.client_secret,
                               key=provider.key)
        client_id = provider.client_id
    keys = id_tokens.fetch_keys(endpoints.jwks_uri, timeout=_timeout())
    after = dt.datetime.fromtimestamp(float(pending["started"]), dt.timezone.utc) \
        if pending["purpose"] in ("sign", "patient-return") else None
    return id_tokens.verify(answer.get("id_token"), keys, issuer=endpoints.issuer,
                            client_id=client_id, nonce=pending["nonce"], now=_now(),
                            authenticated_after=after)


def _ehr(iss: str) -> tuple[smart.Client, smart.Configuration]:
    entry = smart.clients_by_base(current_app.config.get("SMART_CLIENTS") or {}).get(iss)
    if entry is None:
        raise oidc.OidcError("this EHR is no longer set up")
    try:
        return smart.client_from(entry), smart.discover(iss, timeout=_timeout())
    except smart.SmartError as error:
        raise oidc.OidcError(str(error)) from None


def redirect_uri() -> str:
    """Where providers send the browser back (register it with each provider, and with
    each EHR for the re-authentication before a signature)."""
    return url_for("sso.callback", _external=True)


def _refused(message: str, status: int) -> tuple[str, int]:
    return render_template("auth/sso_refused.html", message=message), status


def _words(text: Any) -> str:
    return " ".join(str(text or "an unnamed error").split())[:80]


def _sealer() -> launches.Sealer:
    return launches.Sealer(current_app.secret_key or "")


def _timeout() -> float:
    return float(current_app.config["SMART_TIMEOUT_SECONDS"])


