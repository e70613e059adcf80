"""This service as a SMART Backend Services authorization server for its own FHIR API:
the discovery document and the token endpoint (shared/fhir.md §4.3, §10.3).

``GET /fhir/.well-known/smart-configuration`` tells an integrator where to ask and how.
``POST /auth/token`` (form: ``grant_type=client_credentials``, ``scope``,
``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``,
``client_assertion``) answers an access token when the assertion passes
``client_jwt.verify`` (RS384/ES384, ``typ`` JWT, a registered ``kid``, ``iss`` = ``sub``
= a registered, enabled client id, ``aud`` = this token endpoint, ``exp`` at most 5
minutes ahead, ``jti`` never seen by any process sharing the database, ``jku`` only the
registered JWKS URL). The token is granted the requested scopes narrowed to the
registered ones; it lives ``API_TOKEN_SECONDS`` (at most 300) and is bound to this FHIR
base.

Refusals speak OAuth (RFC 6749 §5.2): JSON ``error`` and ``error_description``,
``Cache-Control: no-store``; ``invalid_client`` (401) for every failed client
authentication, ``invalid_scope``, ``invalid_request``, ``unsupported_grant_type`` (400).
With ``client_credentials`` the client's own authentication is the grant, so a bad
assertion is ``invalid_client`` (RFC 7523 §3.2, as SMART asks), never ``invalid_grant``.
Every issue and every refusal is audited (BALP AuditIUAgetAccessToken: 110114 + ITI-71).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..adapters import audit, clients, http_json, replay, store as store_mod
from ..adapters.engine import StoreError
from ..core import audit_events, outcome, scopes
from ..core.audit_events import Failure
from ..errors import UnavailableError
from . import client_jwt
from .fhir_rest import base_url
from .current import store as _store

log = logging.getLogger(__name__)
bp = Blueprint("oauth", __name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_PATH = "/auth/token"
#: SMART's ceiling for an access token's life (expires_in SHOULD NOT exceed 300).
MAX_TOKEN_SECONDS = 300
#: ``app.extensions`` key: per process, the JWK Sets fetched from clients' JWKS URLs.
KEYS_KEY = "api_client_keys"
#: Largest JWK Set read from a client's JWKS URL (bytes).
MAX_JWKS_BYTES = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """A token request refused in OAuth's terms (``error`` code and description)."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def token_url() -> str:
    """The token endpoint's public URL: what an assertion's ``aud`` must be."""
    configured = current_app.config.get("API_TOKEN_URL")
    return str(configured) if configured else request.url_root.rstrip("/") + TOKEN_PATH


def scopes_supported() -> list[str]:
    """Every scope a client may ask for: each type's cruds letters the API uses, and *."""
    from .api_access import route_scopes

    letters: dict[str, set[str]] = {}
    for route in route_scopes(current_app):
        letters.setdefault(route.need.resource, set()).add(route.need.permission)
    named = [str(scopes.Scope(t, "".join(p for p in scopes.PERMISSIONS if p in ps)))
             for t, ps in sorted(letters.items())]
    return ["system/*.rs", *named]


@bp.get("/fhir/.well-known/smart-configuration")
def smart_configuration() -> Response:
    response = jsonify({
        "issuer": base_url(),
        "token_endpoint": token_url(),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(client_jwt.ALGORITHMS),
        "scopes_supported": scopes_supported(),
        "response_types_supported": ["token"],
        "capabilities": ["client-confidential-asymmetric", "permission-v2"],
        "code_challenge_methods_supported": ["S256"],
    })
    return response


@bp.post(TOKEN_PATH)
def token() -> Response:
    claimed: dict[str, Any] = {}
    try:
        client, granted = _authenticate(claimed)
        lifetime = min(int(current_app.config["API_TOKEN_SECONDS"]), MAX_TOKEN_SECONDS)
        now = dt.datetime.now(dt.timezone.utc)
        issued = clients.issue(_store(), client, granted, audience=base_url(), now=now,
                               lifetime=dt.timedelta(seconds=lifetime))
    except OAuthError as refusal:
        _audit(claimed.get("iss"), claimed.get("name"), failure=refusal)
        log.info("token request refused: %s (%s)", refusal.error, refusal.description)
        response = jsonify(error=refusal.error, error_description=refusal.description)
        response.status_code = refusal.status
        response.headers.update(_NO_STORE)
        return response
    _audit(client.id, client.name, scope=scopes.render(granted))
    response = jsonify(access_token=issued, token_type="bearer", expires_in=lifetime,
                       scope=scopes.render(granted))
    response.headers.update(_NO_STORE)
    return response


def _authenticate(claimed: dict[str, Any]) -> tuple[clients.Client, tuple[scopes.Scope, ...]]:
    form = request.form
    if form.get("grant_type") != "client_credentials":
        raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials.")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError("invalid_client", f"client_assertion_type must be {ASSERTION_TYPE}.",
                         status=401)
    assertion = form.get("client_assertion") or ""
    if not assertion:
        raise OAuthError("invalid_client", "client_assertion is required.", status=401)
    if not form.get("scope"):
        raise OAuthError("invalid_request", "scope is required (e.g. system/Observation.rs).")
    registered = _Registered(_store())
    claimed["iss"] = _claimed_issuer(assertion)
    try:
        client_jwt.verify(client_jwt.bearer_token(f"Bearer {assertion}"), clients=registered,
                          audience=token_url(), replay=_first_use, subject_is_issuer=True)
    except client_jwt.TokenRefused as refused:
        found = registered.found
        claimed["name"] = found.name if found else None
        raise OAuthError("invalid_client", f"The client assertion is refused: "
                         f"{refused.reason}.", status=401) from None
    client = registered.found
    assert client is not None  # verify found it
    claimed["name"] = client.name
    try:
        requested = scopes.parse_all(form["scope"])
    except scopes.ScopeError as bad:
        raise OAuthError("invalid_scope", bad.message) from None
    granted = scopes.grant(requested, client.scopes)
    if not granted:
        raise OAuthError("invalid_scope", "None of the requested scopes is registered for "
                         f"this client (registered: {scopes.render(client.scopes)}).")
    return client, granted


def _claimed_issuer(assertion: str) -> str | None:
    """The ``iss`` an assertion claims, unverified: only for the audit of a refusal."""
    try:
        payload = jws.extract_compact(assertion.encode("ascii")).payload
        iss = json.loads(payload).get("iss")
    except (JoseError, ValueError, UnicodeError, TypeError, AttributeError):
        return None
    return iss[:200] if isinstance(iss, str) else None


@dataclass(frozen=True)
class _Keys:
    """A registered client as ``client_jwt.verify`` sees an issuer."""

    jku: str | None
    keys: KeySet | None
    remote: client_jwt.RemoteKeys | None

    def key_set(self, kid: str) -> KeySet:
        if self.keys is not None:
            return self.keys
        assert self.remote is not None
        return self.remote.key_set(kid)


class _Registered(Mapping[str, _Keys]):
    """The registered, enabled clients, looked up by id as ``verify`` asks; remembers
    the one found."""

    def __init__(self, store: store_mod.Store) -> None:
        self._store = store
        self.found: clients.Client | None = None

    def __getitem__(self, client_id: str) -> _Keys:
        client = clients.get(self._store, client_id)
        if client is None or not client.active:
            raise KeyError(client_id)
        self.found = client
        if client.jwks is not None:
            try:
                keys = client_jwt.key_set(client.jwks, "the registered JWK Set")
            except ValueError as error:
                raise client_jwt.TokenRefused(str(error)) from None
            return _Keys(None, keys, None)
        assert client.jwks_url is not None
        return _Keys(client.jwks_url, None, _remote(client))

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


_lock = threading.Lock()


def _remote(client: clients.Client) -> client_jwt.RemoteKeys:
    """The process's cache of a client's keys behind its JWKS URL (one per client)."""
    cache: dict[tuple[str, str], client_jwt.RemoteKeys] = \
        current_app.extensions.setdefault(KEYS_KEY, {})
    assert client.jwks_url is not None
    key = (client.id, client.jwks_url)
    with _lock:
        if key not in cache:
            config = current_app.config
            timeout = float(config["API_JWKS_FETCH_TIMEOUT_SECONDS"])

            def fetch(url: str) -> http_json.Fetched:
                return http_json.fetch_json(
                    url, timeout=timeout, max_bytes=MAX_JWKS_BYTES,
                    accept="application/jwk-set+json, application/json")

            cache[key] = client_jwt.RemoteKeys(
                client.id, client.jwks_url, fetch,
                cache_seconds=float(config["API_JWKS_CACHE_SECONDS"]))
        return cache[key]


def _first_use(iss: str, jti: str, exp: float) -> bool:
    expires = dt.datetime.fromtimestamp(exp, dt.timezone.utc)
    try:
        return replay.first_use(_store(), iss, jti, expires)
    except StoreError as error:
        log.error("token endpoint: cannot check a jti (%s)",
                  type(error.original_error or error).__name__)
        raise OAuthError("server_error", "The assertion could not be checked for replay; "
                         "try again shortly.", status=503) from error


def _audit(client_id: str | None, name: str | None, *, scope: str | None = None,
           failure: OAuthError | None = None) -> None:
    """The AuditEvent of a token request; a refusal is audited even if the audit then
    fails (it is logged); an issue whose audit fails is not answered (503)."""
    event = audit_events.access_token(
        client_id=client_id or "(not named)", client_name=name,
        address=request.remote_addr, recorded=dt.datetime.now(dt.timezone.utc),
        scope=scope, failure=None if failure is None else Failure(
            audit_events.MINOR_FAILURE,
            outcome.simple("error", "security", f"{failure.error}: {failure.description}")))
    try:
        audit.write(_store().engine, event)
    except UnavailableError:
        if failure is None:
            raise
        log.error("the refused token request could not be audited")


