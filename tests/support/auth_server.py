"""A SMART App Launch 2.x authorization server for the tests, run as its own process.

The product's SMART client and backend-services delivery are tested against this
instead of a mock, so a product bug must be *refused* here the way a strict EHR would
refuse it: a ``plain`` PKCE challenge, a wrong verifier, a reused code, a wrong ``aud``,
an RS256 or ten-minute client assertion, a replayed ``jti``. It shares no code with the
product (``joserfc`` for the JWTs, the standard library for the rest).

``python -m tests.support.auth_server`` listens on 127.0.0.1 at a free port and prints
``port <n>`` on its first stdout line. At start it makes an RS384 key (kid ``as-1``)
that signs every access and id token; ``GET /jwks`` publishes its public half.

Test-only control endpoints (JSON):

- ``POST /_config``: merged into the config: ``fhir_base`` (the required ``aud``),
  ``clients`` (``{id: {"redirect_uris": [...], "jwks": {...} or absent for a public
  client}}``, merged per client id), ``token_lifetime`` (300), ``standalone_patient``,
  ``fhir_user``, ``deny``; as an OpenID provider: ``subject`` (the id token's ``sub``),
  ``user_claims`` (merged into every id token: name, roles, …), ``id_token_claims``
  (merged last, to forge a foreign ``aud`` or a wrong ``nonce``), ``signed_in_at`` (the
  epoch time the user last typed their password: ``auth_time`` unless the request asks
  for a new login), ``step_up`` (False: ``prompt=login`` and ``max_age`` are ignored,
  as by a provider that cannot re-authenticate). A client with ``"secret"`` must
  authenticate with it (``client_secret_basic``).
- ``POST /_launch`` ``{"patient", "encounter"}`` -> ``{"launch": "<opaque>"}``.
- ``GET /_state``: the authorize requests, what was issued and refused, the refresh count.
- ``POST /_reset``: forgets everything (config included) except the signing key.

OpenID Connect: ``GET /.well-known/openid-configuration``; a request with scope
``openid`` and no launch scope is a plain sign-in (no patient context); id tokens carry
``iss``, ``sub``, ``aud``, ``exp``, ``iat``, ``auth_time``, ``nonce`` (when sent) and
``fhirUser`` (when asked for). ``prompt=login`` or ``max_age=0`` makes the user log in
again (``auth_time`` = now); other ``prompt`` values than login/consent are refused.

Protocol: ``GET|POST /authorize`` (auto-approves, no login page), ``POST /token``
(authorization_code with PKCE S256, rotating refresh_token, client_credentials with a
private_key_jwt assertion). No token value is ever put in the state or on stderr.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.support import loopback

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS384", "ES384")
#: How long an authorization code may wait before it is exchanged.
CODE_LIFETIME = 60
#: Longest client assertion lifetime (SMART Backend Services), and the clock skew allowed.
ASSERTION_LIFETIME = 300
SKEW = 5

LOCK = threading.Lock()
KEY = RSAKey.generate_key(2048, parameters={"kid": "as-1", "alg": "RS384", "use": "sig"})
BASE = ""  # set in main() once the port is known


def _fresh_config() -> dict[str, Any]:
    return {"fhir_base": None, "clients": {}, "token_lifetime": 300,
            "standalone_patient": None, "fhir_user": None, "deny": False,
            "subject": None, "user_claims": {}, "id_token_claims": {},
            "signed_in_at": None, "step_up": True}


CONFIG: dict[str, Any] = _fresh_config()
# launch -> {"patient", "encounter"}; code -> grant; refresh token -> grant
LAUNCHES: dict[str, dict[str, Any]] = {}
CODES: dict[str, dict[str, Any]] = {}
REFRESH: dict[str, dict[str, Any]] = {}
SEEN_JTI: set[str] = set()
STATE: dict[str, Any] = {"authorize_requests": [], "issued": [], "refreshed": 0,
                         "rejected": []}


class Refused(Exception):
    """An OAuth error: ``error`` is the RFC 6749 code, the text says why (no PHI)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _reset() -> None:
    CONFIG.clear()
    CONFIG.update(_fresh_config())
    for table in (LAUNCHES, CODES, REFRESH):
        table.clear()
    SEEN_JTI.clear()
    STATE.update(authorize_requests=[], issued=[], refreshed=0, rejected=[])


def _reject(endpoint: str, refused: Refused) -> None:
    with LOCK:
        STATE["rejected"].append({"endpoint": endpoint, "error": refused.error,
                                  "description": refused.description})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _scopes(scope: str) -> list[str]:
    return scope.split()


# -- /authorize -------------------------------------------------------------------------

def _authorize(params: dict[str, str]) -> tuple[int, str]:
    """(302, Location) on success or for a redirectable error; (400, text) when the
    client or redirect_uri is wrong (never redirect to an unverified address)."""
    with LOCK:
        STATE["authorize_requests"].append(dict(params))
        client = CONFIG["clients"].get(params.get("client_id", ""))
    if client is None:
        raise Refused("invalid_client", "unknown client_id")
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri or redirect_uri not in (client.get("redirect_uris") or []):
        raise Refused("invalid_request", "redirect_uri is not registered for this client")
    try:
        code = _approve(params)
    except Refused as refused:
        _reject("/authorize", refused)
        answer = {"error": refused.error, "error_description": refused.description}
        if params.get("state"):
            answer["state"] = params["state"]
        return 302, _with_query(redirect_uri, answer)
    return 302, _with_query(redirect_uri, {"code": code, "state": params["state"]})


def _with_query(uri: str, query: dict[str, str]) -> str:
    return uri + ("&" if urlsplit(uri).query else "?") + urlencode(query)


def _approve(params: dict[str, str]) -> str:
    if params.get("response_type") != "code":
        raise Refused("unsupported_response_type", "response_type must be code")
    if not params.get("state"):
        raise Refused("invalid_request", "state is required")
    if params.get("code_challenge_method") != "S256":
        raise Refused("invalid_request", "code_challenge_method must be S256")
    if not params.get("code_challenge"):
        raise Refused("invalid_request", "code_challenge is required")
    scopes = _scopes(params.get("scope", ""))
    smart_request = "launch" in scopes or "launch/patient" in scopes or "aud" in params
    if smart_request and (not CONFIG["fhir_base"] or params.get("aud") != CONFIG["fhir_base"]):
        raise Refused("invalid_request", "aud is not this EHR's FHIR base URL")
    if params.get("prompt", "login") not in ("login", "consent"):
        raise Refused("login_required", "the user must log in (prompt=none is not possible)")
    max_age = params.get("max_age")
    if max_age is not None and not max_age.isdigit():
        raise Refused("invalid_request", "max_age must be a number of seconds")
    relogin = CONFIG["step_up"] and (params.get("prompt") == "login" or max_age == "0")
    auth_time = int(time.time()) if relogin or CONFIG["signed_in_at"] is None \
        else int(CONFIG["signed_in_at"])
    if "launch" in scopes:
        if not params.get("launch"):
            raise Refused("invalid_request", "scope launch needs a launch parameter")
        with LOCK:
            context = LAUNCHES.get(params["launch"])
        if context is None:
            raise Refused("invalid_request", "unknown launch parameter")
        patient, encounter = context["patient"], context.get("encounter")
    elif "launch/patient" in scopes:
        if not CONFIG["standalone_patient"]:
            raise Refused("invalid_request", "no patient to choose (standalone_patient)")
        patient, encounter = CONFIG["standalone_patient"], None
    elif "openid" in scopes:  # a sign-in only
        if not params.get("nonce"):
            raise Refused("invalid_request", "nonce is required for a sign-in")
        patient, encounter = None, None
    else:
        raise Refused("invalid_scope", "scope needs launch (with launch=) or launch/patient")
    if CONFIG["deny"]:
        raise Refused("access_denied", "the user refused")
    code = secrets.token_urlsafe(32)
    with LOCK:
        CODES[code] = {"client_id": params["client_id"], "redirect_uri": params["redirect_uri"],
                       "challenge": params["code_challenge"], "scope": params.get("scope", ""),
                       "patient": patient, "encounter": encounter,
                       "nonce": params.get("nonce"), "auth_time": auth_time,
                       "created": time.monotonic(),
                       "used": False}
    return code


# -- /token -----------------------------------------------------------------------------

def _token(form: dict[str, str]) -> dict[str, Any]:
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        return _authorization_code(form)
    if grant_type == "refresh_token":
        return _refresh(form)
    if grant_type == "client_credentials":
        return _client_credentials(form)
    raise Refused("unsupported_grant_type", "grant_type is not supported")


def _unverified(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a JWT *before* verification (to pick the client/key)."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise Refused("invalid_client", "client_assertion is not a signed JWT")
    try:
        header, claims = (json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
                          for p in parts[:2])
    except ValueError:
        raise Refused("invalid_client", "client_assertion is not a signed JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise Refused("invalid_client", "client_assertion is not a signed JWT")
    return header, claims


def _client_id(form: dict[str, str]) -> str:
    """The client named by the request: ``client_id``, else the assertion's ``sub``,
    else the Basic credentials' user."""
    if form.get("_basic"):
        return form["_basic"].partition(":")[0]
    if form.get("client_id"):
        return form["client_id"]
    if form.get("client_assertion"):
        sub = _unverified(form["client_assertion"])[1].get("sub")
        if isinstance(sub, str):
            return sub
    raise Refused("invalid_client", "client_id is missing")


def _authenticate(form: dict[str, str], client_id: str) -> None:
    """A confidential client (registered ``jwks``) must prove itself with a private_key_jwt
    assertion; a public client must not send one."""
    client = CONFIG["clients"].get(client_id)
    if client is None:
        raise Refused("invalid_client", "unknown client_id")
    if client.get("secret"):
        if form.get("_basic") != f"{client_id}:{client['secret']}":
            raise Refused("invalid_client", "client_secret_basic authentication failed")
        return
    jwks = client.get("jwks")
    if not jwks:
        if form.get("client_assertion"):
            raise Refused("invalid_client", "a public client has no keys to assert with")
        return
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise Refused("invalid_client", f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion = form.get("client_assertion") or ""
    header, _ = _unverified(assertion)
    if header.get("alg") not in ASSERTION_ALGORITHMS:
        raise Refused("invalid_client", "client_assertion alg must be RS384 or ES384")
    if header.get("typ") != "JWT":
        raise Refused("invalid_client", "client_assertion typ must be JWT")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise Refused("invalid_client", "client_assertion kid is required")
    try:
        key = KeySet.import_key_set(jwks).get_by_kid(header["kid"])
    except Exception:  # joserfc: unknown kid, or a malformed registered set
        raise Refused("invalid_client", "client_assertion kid is not in the client's jwks") \
            from None
    try:
        claims = jwt.decode(assertion, key, algorithms=[header["alg"]]).claims
    except Exception:  # joserfc raises a family of errors: any is a bad signature
        raise Refused("invalid_client", "client_assertion signature does not verify") \
            from None
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise Refused("invalid_client", "client_assertion iss and sub must be the client_id")
    aud = claims.get("aud")
    token_url = f"{BASE}/token"
    if aud != token_url and not (isinstance(aud, list) and token_url in aud):
        raise Refused("invalid_client", "client_assertion aud must be the token URL")
    exp, now = claims.get("exp"), time.time()
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise Refused("invalid_client", "client_assertion exp is required")
    if exp < now - SKEW:
        raise Refused("invalid_client", "client_assertion has expired")
    if exp - now > ASSERTION_LIFETIME + SKEW:
        raise Refused("invalid_client", "assertion lifetime exceeds 5 minutes")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise Refused("invalid_client", "client_assertion jti is required")
    with LOCK:
        if jti in SEEN_JTI:
            raise Refused("invalid_client", "client_assertion jti was already used")
        SEEN_JTI.add(jti)


def _authorization_code(form: dict[str, str]) -> dict[str, Any]:
    client_id = _client_id(form)
    _authenticate(form, client_id)
    with LOCK:
        grant = CODES.get(form.get("code", ""))
        if grant is None:
            raise Refused("invalid_grant", "unknown authorization code")
        if grant["used"]:
            raise Refused("invalid_grant", "authorization code was already used")
        grant["used"] = True
    if time.monotonic() - grant["created"] > CODE_LIFETIME:
        raise Refused("invalid_grant", "authorization code has expired")
    if grant["client_id"] != client_id:
        raise Refused("invalid_grant", "authorization code was issued to another client")
    if form.get("redirect_uri") != grant["redirect_uri"]:
        raise Refused("invalid_grant", "redirect_uri differs from the authorize request")
    verifier = form.get("code_verifier") or ""
    if _b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest()) \
            != grant["challenge"]:
        raise Refused("invalid_grant", "code_verifier does not match the code_challenge")
    return _grant("authorization_code", client_id, grant)


def _refresh(form: dict[str, str]) -> dict[str, Any]:
    client_id = _client_id(form)
    _authenticate(form, client_id)
    with LOCK:
        grant = REFRESH.pop(form.get("refresh_token", ""), None)  # rotation: one use
        if grant is not None and grant["client_id"] != client_id:
            REFRESH[form["refresh_token"]] = grant  # not this client's: leave it
            grant = None
    if grant is None:
        raise Refused("invalid_grant", "refresh_token is unknown, used or not this client's")
    if form.get("scope"):
        if not set(_scopes(form["scope"])) <= set(_scopes(grant["scope"])):
            raise Refused("invalid_scope", "a refresh may only narrow the scope")
        grant = {**grant, "scope": form["scope"]}
    with LOCK:
        STATE["refreshed"] += 1
    return _grant("refresh_token", client_id, grant)


def _client_credentials(form: dict[str, str]) -> dict[str, Any]:
    client_id = _client_id(form)
    client = CONFIG["clients"].get(client_id)
    if client is None or not client.get("jwks"):
        raise Refused("invalid_client", "client_credentials needs a client with jwks")
    _authenticate(form, client_id)
    scopes = _scopes(form.get("scope", ""))
    if not scopes or any(not s.startswith("system/") for s in scopes):
        raise Refused("invalid_scope", "client_credentials allows system/ scopes only")
    lifetime = min(int(CONFIG["token_lifetime"]), 300)
    answer = {"access_token": _access_token(client_id, form["scope"], None, None, lifetime),
              "token_type": "Bearer", "expires_in": lifetime, "scope": form["scope"]}
    _issued("client_credentials", client_id, form["scope"], None, None)
    return answer


def _grant(grant_type: str, client_id: str, grant: dict[str, Any]) -> dict[str, Any]:
    """The token answer of an authorization_code or refresh_token grant."""
    lifetime = int(CONFIG["token_lifetime"])
    scope, patient, encounter = grant["scope"], grant["patient"], grant.get("encounter")
    scopes = _scopes(scope)
    answer: dict[str, Any] = {
        "access_token": _access_token(client_id, scope, patient, encounter, lifetime),
        "token_type": "Bearer", "expires_in": lifetime, "scope": scope}
    if patient:
        answer.update(patient=patient, need_patient_banner=True)
    if encounter:
        answer["encounter"] = encounter
    if "offline_access" in scopes or "online_access" in scopes:
        refresh = secrets.token_urlsafe(32)
        with LOCK:
            REFRESH[refresh] = {"client_id": client_id, "scope": scope, "patient": patient,
                                "encounter": encounter}
        answer["refresh_token"] = refresh
    if "openid" in scopes:
        answer["id_token"] = _id_token(client_id, grant.get("nonce"), lifetime,
                                       grant.get("auth_time"), "fhirUser" in scopes)
    _issued(grant_type, client_id, scope, patient, encounter)
    return answer


def _issued(grant_type: str, client_id: str, scope: str, patient: str | None,
            encounter: str | None) -> None:
    with LOCK:
        STATE["issued"].append({"grant_type": grant_type, "client_id": client_id,
                                "scope": scope, "patient": patient, "encounter": encounter})


def _sign(claims: dict[str, Any]) -> str:
    return jwt.encode({"alg": "RS384", "typ": "JWT", "kid": "as-1"}, claims, KEY,
                      algorithms=["RS384"])


def _access_token(client_id: str, scope: str, patient: str | None, encounter: str | None,
                  lifetime: int) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": BASE, "aud": CONFIG["fhir_base"], "sub": client_id,
                              "scope": scope, "iat": now, "exp": now + lifetime,
                              "jti": str(uuid.uuid4())}
    if patient:
        claims["patient"] = patient
    if encounter:
        claims["encounter"] = encounter
    return _sign(claims)


def _id_token(client_id: str, nonce: str | None, lifetime: int, auth_time: int | None,
              fhir_user: bool) -> str:
    now = int(time.time())
    user = CONFIG["fhir_user"] or "Practitioner/test-practitioner"
    claims: dict[str, Any] = {"iss": BASE, "sub": CONFIG["subject"] or user.rpartition("/")[2],
                              "aud": client_id, "iat": now, "exp": now + lifetime,
                              "auth_time": auth_time or now}
    if fhir_user:
        claims["fhirUser"] = user
    if nonce:
        claims["nonce"] = nonce
    claims.update(CONFIG["user_claims"])
    claims.update(CONFIG["id_token_claims"])
    return _sign(claims)


# -- HTTP -------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:  # quiet: URLs carry codes and tokens
        pass

    def _raw(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode("utf-8"), "application/json", headers)

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode("utf-8"), "text/plain; charset=utf-8")

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if url.path == "/.well-known/openid-configuration":
            return self._json(200, {
                "issuer": BASE, "authorization_endpoint": f"{BASE}/authorize",
                "token_endpoint": f"{BASE}/token", "jwks_uri": f"{BASE}/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS384"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "private_key_jwt", "none"],
                "scopes_supported": ["openid", "profile", "email", "fhirUser"],
                "claims_supported": ["sub", "name", "preferred_username", "auth_time",
                                     "fhirUser", "roles"]})
        if url.path == "/jwks":
            return self._json(200, KeySet([KEY]).as_dict(private=False))
        if url.path == "/_state":
            with LOCK:
                return self._json(200, STATE)
        if url.path == "/authorize":
            return self._authorize(url.query)
        return self._text(404, "not found")

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        raw = self._raw()
        if path == "/authorize":
            return self._authorize(raw.decode("utf-8", "replace"))
        if path == "/token":
            return self._token(raw)
        if path not in ("/_config", "/_launch", "/_reset"):
            return self._text(404, "not found")
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("a JSON object is required")
        except ValueError as exc:
            return self._json(400, {"error": str(exc)})
        with LOCK:
            if path == "/_config":
                clients = body.pop("clients", None)
                CONFIG.update(body)
                if isinstance(clients, dict):  # per client: register one at a time
                    CONFIG["clients"].update(clients)
                return self._json(200, {"ok": True})
            if path == "/_launch":
                launch = secrets.token_urlsafe(16)
                LAUNCHES[launch] = {"patient": body.get("patient"),
                                    "encounter": body.get("encounter")}
                return self._json(200, {"launch": launch})
            _reset()
            return self._json(200, {"ok": True})

    def _authorize(self, query: str) -> None:
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        try:
            status, where = _authorize(params)
        except Refused as refused:
            _reject("/authorize", refused)
            return self._text(400, f"{refused.error}: {refused.description}")
        self._send(status, b"", "text/plain", {"Location": where})

    def _token(self, raw: bytes) -> None:
        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if content_type != "application/x-www-form-urlencoded":
                raise Refused("invalid_request",
                              "the body must be application/x-www-form-urlencoded")
            form = {k: v[0] for k, v in
                    parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
            form.pop("_basic", None)
            basic = self.headers.get("Authorization") or ""
            if basic.startswith("Basic "):
                try:
                    user, _, secret = base64.b64decode(basic[6:]).decode("utf-8").partition(":")
                except ValueError:
                    raise Refused("invalid_client", "malformed Basic credentials") from None
                form["_basic"] = f"{unquote_plus(user)}:{unquote_plus(secret)}"
            answer = _token(form)
        except Refused as refused:
            _reject("/token", refused)
            status = 401 if refused.error == "invalid_client" else 400
            headers = {**no_store}
            if status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="token"'
            return self._json(status, {"error": refused.error,
                                       "error_description": refused.description}, headers)
        self._json(200, answer, no_store)


def main(argv: list[str]) -> int:
    global BASE
    del argv
    server = loopback.bind(Handler)
    BASE = loopback.base(server)
    return loopback.serve(server)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
