"""Sign-in by EHR launch: the EHR's id token says who launched, and that person is
signed in (a new server-side session, audited like a password sign-in).

The launch asked for ``openid fhirUser`` with a nonce (``adapters.smart``). The id token
is verified where every id token is (``adapters.id_tokens``: signature with a key from
the EHR's ``jwks_uri``, ``iss`` = the EHR's ``issuer``, ``aud`` = our client id, exp,
the launch's nonce). Its ``fhirUser`` (made a full URL against the launch's FHIR base
when the EHR gives it relative) is matched to a user by (issuer, fhirUser); a person
launching for the first time becomes a user with ``SMART_LAUNCH_ROLE``, named by the
id token's ``name`` or else by the EHR's Practitioner resource. Their signatures then
name that Practitioner in the EHR's copy of the record (``record.exams.ehr_author``).

A launch without an id token (an EHR that does not do OpenID Connect) signs nobody in:
the person signed in already, if any, carries on, else the password form asks. An id
token that does not verify stops the launch, saying why.
"""
from __future__ import annotations

from dataclasses import replace

from flask import current_app, g, request

from ..adapters import id_tokens, identities, launches, smart, users
from ..core import audit_events, patient as patient_mod
from ..errors import PluginError
from . import signin
from .audit import ACTOR_KEY
from .auth import actor, current_user
from .current import now as _now, store as _store


class LaunchSignInRefused(PluginError):
    """The launch's id token cannot sign anyone in; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def sign_in(started: launches.Launch, client: smart.Client, token: smart.Token, *,
            keep: tuple[str, ...] = ()) -> smart.Token:
    """Sign in the person the launch's id token names (the session's ``keep`` keys
    carried over); the token with its verified ``fhirUser`` (None without id token)."""
    if token.id_token is None:
        return replace(token, fhir_user=None)
    claims = _verify(started, client, token)
    if not claims.fhir_user:
        raise LaunchSignInRefused("The EHR's id token does not say which practitioner you "
                                  "are (no fhirUser).")
    fhir_user = absolute(claims.fhir_user, started.iss)
    store, now = _store(), _now()
    user = identities.find(store, claims.issuer, "fhirUser", fhir_user)
    if user is None:
        role = str(current_app.config.get("SMART_LAUNCH_ROLE") or "")
        if not role:
            message = ("You are not set up to use this app yet, and launching may not create "
                       "accounts. Ask your administrator.")
            signin.audit_login(_attempt(fhir_user), None, message)
            raise LaunchSignInRefused(message)
        name = claims.name or _practitioner_name(started.iss, fhir_user, token)
        hint = claims.text("preferred_username") or _attempt(fhir_user)
        try:
            user = identities.link_new_user(
                store, issuer=claims.issuer, kind="fhirUser", subject=fhir_user,
                display_name=name, role=role, username_hint=hint, now=now,
                audit=lambda new: [audit_events.user_administration(
                    "add", username=new.username, actor=actor(new),
                    address=request.remote_addr, recorded=now)])
        except users.UserError as error:  # SMART_LAUNCH_ROLE is not a role
            current_app.logger.error("SMART_LAUNCH_ROLE is unusable: %s", error.message)
            raise LaunchSignInRefused("Your account could not be made here (the launch "
                                      "role setting is wrong). Ask your administrator.") \
                from None
    if not user.active:
        message = "Your account here is disabled. Ask your administrator."
        signin.audit_login(user.username, None, message)
        raise LaunchSignInRefused(message)
    already = current_user()
    if already is None or already.id != user.id:  # a sign-in: a new session
        signin.audit_login(user.username, user, None)
        signin.start_session(user, keep=keep)
        g.user = user  # this request's writes (the exam begun) are now theirs
        setattr(g, ACTOR_KEY, actor(user))
    return replace(token, fhir_user=fhir_user)


def _verify(started: launches.Launch, client: smart.Client,
            token: smart.Token) -> id_tokens.IdClaims:
    try:
        config = smart.discover(started.iss, timeout=_timeout())
        if not config.issuer or not config.jwks_uri:
            raise id_tokens.IdTokenError("the EHR publishes no issuer or keys for its id "
                                         "tokens")
        keys = id_tokens.fetch_keys(config.jwks_uri, timeout=_timeout())
        return id_tokens.verify(token.id_token, keys, issuer=config.issuer,
                                client_id=client.client_id, nonce=started.nonce, now=_now())
    except smart.SmartError as error:
        raise LaunchSignInRefused(f"You could not be signed in from the EHR: {error}.") \
            from None
    except id_tokens.IdTokenError as error:
        raise LaunchSignInRefused(f"You could not be signed in from the EHR: "
                                  f"{error.message}.") from None


def absolute(fhir_user: str, base: str) -> str:
    """A fhirUser as a full URL (an EHR may give it relative to its FHIR base)."""
    if "://" in fhir_user:
        return fhir_user
    return f"{smart.base_key(base)}/{fhir_user.lstrip('/')}"


def _practitioner_name(base: str, fhir_user: str, token: smart.Token) -> str:
    """The Practitioner's name as the EHR has it; its id when it cannot be read."""
    prefix = smart.base_key(base) + "/"
    fallback = fhir_user.rsplit("/", 1)[-1]
    if not fhir_user.startswith(prefix):
        return fallback
    try:
        resource = smart.read(base, fhir_user[len(prefix):], token.access_token,
                              timeout=_timeout())
    except smart.SmartError:
        return fallback
    name = patient_mod.display_name(resource, family_first=False) \
        if resource.get("resourceType") in ("Practitioner", "PractitionerRole") else ""
    return name.strip() or fallback


def _attempt(fhir_user: str) -> str:
    return fhir_user.rsplit("/", 1)[-1][:users.USERNAME_LENGTH]


def _timeout() -> float:
    return float(current_app.config["SMART_TIMEOUT_SECONDS"])


