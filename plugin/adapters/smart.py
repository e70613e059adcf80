"""SMART App Launch 2.x and SMART Backend Services, the client side, with Authlib.

What the plugin asks of an EHR's authorization server (fhir.md section 4):

- **Discovery**: ``GET {iss}/.well-known/smart-configuration``; a server that does not
  offer PKCE with ``S256`` is refused (SMART 2.x makes it mandatory).
- **Authorize** (EHR launch or standalone): ``response_type=code``, ``state`` (256 random
  bits, single use), ``aud`` = the FHIR base, ``launch`` (EHR launch only), PKCE S256.
- **Token**: the code with its ``code_verifier``; a refresh when the access token has
  run out; for deliveries without a user, ``client_credentials`` with a signed JWT
  assertion. A client with a private key authenticates with ``private_key_jwt`` at the
  token endpoint; one without is a public client (PKCE protects its code).

Two Authlib pitfalls are handled here (fhir.md section 4.4): its assertion defaults to
RS256 and a one-hour lifetime (SMART allows RS384/ES384 and at most five minutes), and
it writes the generated ``jti`` into the ``claims`` dict it was given, so a dict kept on
the auth object would make every later assertion a replay. Each assertion is therefore
signed with fresh claims, ``ASSERTION_SECONDS`` of life and the key's own algorithm.

Nothing here logs a token, a code or a patient id; errors (``SmartError``) carry words
safe to show: the step that failed, an HTTP status and the server's OAuth ``error``.
"""
from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from . import http_json

__all__ = ["ASSERTION_SECONDS", "Authorization", "Client", "Configuration", "SmartError",
           "Token", "authorization", "backend_token", "base_key", "client_from",
           "clients_by_base", "discover", "exchange", "expires_soon", "read", "refresh"]

#: Lifetime of a client assertion: SMART allows at most 300 s; a minute less leaves room
#: for an authorization server whose clock runs behind ours.
ASSERTION_SECONDS = 240
#: Largest answer read from an authorization server or a FHIR read (bytes).
MAX_ANSWER = 1024 * 1024
#: A token that expires within this many seconds counts as expired (it could run out
#: on the way to the EHR).
EXPIRY_MARGIN = 30
ALGORITHMS = {"RSA": "RS384", "EC": "ES384"}


class SmartError(Exception):
    """A launch or token step failed; ``str()`` is safe to show and to log."""


@dataclass(frozen=True)
class Configuration:
    """The parts of an EHR's ``smart-configuration`` the plugin uses."""

    iss: str
    token_endpoint: str
    authorization_endpoint: str | None = None
    capabilities: frozenset[str] = frozenset()
    grant_types: frozenset[str] = frozenset()
    issuer: str | None = None
    jwks_uri: str | None = None


@dataclass(frozen=True)
class Client:
    """How the plugin is registered with one EHR: its ``client_id``, the scope it asks
    for, and, for a confidential asymmetric client, its private key."""

    client_id: str
    scope: str
    key: RSAKey | ECKey | None = field(default=None, repr=False)

    @property
    def alg(self) -> str:
        if self.key is None:
            raise SmartError("this client has no private key")
        return ALGORITHMS[self.key.key_type]


@dataclass(frozen=True)
class Authorization:
    """A started authorization: the URL to send the browser to, and the secrets kept
    server-side until the callback (``state`` to match it, the PKCE verifier)."""

    url: str
    state: str
    code_verifier: str = field(repr=False)
    nonce: str | None = None


@dataclass(frozen=True)
class Token:
    """A token answer: the access token and its context (SMART launch context)."""

    access_token: str = field(repr=False)
    expires_at: dt.datetime
    scope: str = ""
    refresh_token: str | None = field(default=None, repr=False)
    patient: str | None = None
    encounter: str | None = None
    fhir_user: str | None = None
    #: the OpenID id token as received, to be verified (``id_tokens.verify``) before use
    id_token: str | None = field(default=None, repr=False)

    def expired(self, now: dt.datetime | None = None) -> bool:
        return expires_soon(self.expires_at, now)


def expires_soon(expires_at: dt.datetime | None, now: dt.datetime | None = None) -> bool:
    """Whether a token expiring at ``expires_at`` (None: unknown) is too close to its
    end to be sent (``EXPIRY_MARGIN``)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return expires_at is None or now >= expires_at - dt.timedelta(seconds=EXPIRY_MARGIN)


def base_key(url: str) -> str:
    """A FHIR base URL as the settings and records compare it (no trailing slash)."""
    return str(url).strip().rstrip("/")


def clients_by_base(configured: Mapping[str, Any]) -> dict[str, Any]:
    """``SMART_CLIENTS`` keyed by ``base_key`` of each EHR's FHIR base."""
    return {base_key(iss): entry for iss, entry in (configured or {}).items()}


def client_from(entry: Mapping[str, Any], *, default_scope: str = "") -> Client:
    """A ``Client`` from a settings entry (``SMART_CLIENTS[iss]`` or
    ``EHR_BACKEND_CLIENT``): ``client_id``, optional ``scope``, and ``jwk`` (a private
    JWK) or ``jwk_file`` (a path to one). A ValueError names what is wrong."""
    if not isinstance(entry, Mapping):
        raise ValueError("a SMART client setting must be an object")
    client_id = entry.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ValueError("a SMART client setting needs a client_id")
    scope = entry.get("scope") or default_scope
    if not isinstance(scope, str):
        raise ValueError("a SMART client's scope must be a string")
    jwk = entry.get("jwk")
    if jwk is None and entry.get("jwk_file"):
        try:
            jwk = json.loads(Path(str(entry["jwk_file"])).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read the SMART client's jwk_file "
                             f"({type(error).__name__})") from None
    if jwk is None:
        return Client(client_id=client_id, scope=scope)
    try:
        key = KeySet.import_key_set({"keys": [jwk]}).keys[0]
    except (JoseError, ValueError, TypeError, KeyError):
        raise ValueError("the SMART client's jwk is not a usable JWK") from None
    if key.key_type not in ALGORITHMS or not key.is_private:
        raise ValueError("the SMART client's jwk must be a private RSA or EC (P-384) key")
    if key.key_type == "EC" and key.as_dict().get("crv") != "P-384":
        raise ValueError("ES384 needs an EC key on the P-384 curve")
    if not key.kid:
        raise ValueError("the SMART client's jwk needs a kid")
    return Client(client_id=client_id, scope=scope, key=key)  # type: ignore[arg-type]


def discover(iss: str, *, timeout: float) -> Configuration:
    """Read and check ``{iss}/.well-known/smart-configuration``."""
    url = iss.rstrip("/") + "/.well-known/smart-configuration"
    document = _get_json(url, timeout=timeout, what="the EHR's SMART configuration")
    if not isinstance(document, Mapping):
        raise SmartError("the EHR's SMART configuration is not a JSON object")
    token_endpoint = document.get("token_endpoint")
    if not isinstance(token_endpoint, str) or not _same_security(iss, token_endpoint):
        raise SmartError("the EHR's SMART configuration has no usable token_endpoint")
    authorize = document.get("authorization_endpoint")
    if authorize is not None and (not isinstance(authorize, str)
                                  or not _same_security(iss, authorize)):
        raise SmartError("the EHR's SMART configuration has an unusable "
                         "authorization_endpoint")
    methods = document.get("code_challenge_methods_supported") or []
    if authorize and "S256" not in methods:
        raise SmartError("the EHR's authorization server does not offer PKCE with S256, "
                         "which SMART App Launch 2 requires")
    return Configuration(
        iss=iss, token_endpoint=token_endpoint, authorization_endpoint=authorize,
        capabilities=frozenset(_strings(document.get("capabilities"))),
        grant_types=frozenset(_strings(document.get("grant_types_supported"))),
        issuer=document.get("issuer") if isinstance(document.get("issuer"), str) else None,
        jwks_uri=document.get("jwks_uri") if isinstance(document.get("jwks_uri"), str)
        else None)


def authorization(config: Configuration, client: Client, *, redirect_uri: str,
                  launch: str | None = None, scope: str | None = None) -> Authorization:
    """The authorize URL of an EHR launch (with ``launch``) or a standalone launch."""
    if not config.authorization_endpoint:
        raise SmartError("the EHR's SMART configuration has no authorization_endpoint")
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters, within PKCE's 43-128
    session = OAuth2Session(client.client_id, redirect_uri=redirect_uri,
                            scope=scope or client.scope, code_challenge_method="S256")
    extra = {"aud": config.iss}
    if launch is not None:
        extra["launch"] = launch
    nonce = None
    if "openid" in (scope or client.scope).split():  # the id token must answer this one
        extra["nonce"] = nonce = secrets.token_urlsafe(32)
    url, _ = session.create_authorization_url(config.authorization_endpoint, state=state,
                                              code_verifier=verifier, **extra)
    return Authorization(url=url, state=state, code_verifier=verifier, nonce=nonce)


def exchange(config: Configuration, client: Client, *, code: str, redirect_uri: str,
             code_verifier: str, timeout: float) -> Token:
    """Trade the authorization code (and the PKCE verifier) for a token."""
    return _token(config, client, "the code exchange", timeout=timeout,
                  grant_type="authorization_code", code=code, redirect_uri=redirect_uri,
                  code_verifier=code_verifier)


def refresh(config: Configuration, client: Client, refresh_token: str, *,
            timeout: float) -> Token:
    """A new access token for a launch whose token ran out."""
    return _token(config, client, "the token refresh", timeout=timeout,
                  grant_type="refresh_token", refresh_token=refresh_token)


def backend_token(config: Configuration, client: Client, *, timeout: float) -> Token:
    """A system token (SMART Backend Services: client_credentials + a JWT assertion)."""
    if client.key is None:
        raise SmartError("backend services need a client with a private key (jwk)")
    return _token(config, client, "the backend services token request", timeout=timeout,
                  grant_type="client_credentials", scope=client.scope)


def read(base: str, path: str, token: str, *, timeout: float) -> dict[str, Any]:
    """GET one FHIR resource (``path`` relative to ``base``) with the bearer token."""
    url = base.rstrip("/") + "/" + path.lstrip("/")
    answer = _get_json(url, timeout=timeout, what=f"the EHR's {path.split('/')[0]}",
                       headers={"Authorization": f"Bearer {token}",
                                "Accept": "application/fhir+json"})
    if not isinstance(answer, dict) or "resourceType" not in answer:
        raise SmartError(f"the EHR's {path.split('/')[0]} is not a FHIR resource")
    return answer


# -- the token endpoint -------------------------------------------------------------------

def assertion(client: Client) -> PrivateKeyJWT:
    """The ``private_key_jwt`` client authentication of ``client`` (which has a key), for
    other token requests than SMART's own (e.g. single sign-on, ``adapters.oidc``)."""
    return _Assertion(client)


class _Assertion(PrivateKeyJWT):
    """``private_key_jwt`` signed fresh each time, short-lived, RS384/ES384 with kid."""

    name = "private_key_jwt"

    def __init__(self, client: Client) -> None:
        super().__init__(alg=client.alg)
        self._client = client

    def sign(self, auth: Any, token_endpoint: str) -> str:
        key = self._client.key
        assert key is not None
        return private_key_jwt_sign(key, client_id=self._client.client_id,
                                    token_endpoint=token_endpoint, alg=self._client.alg,
                                    claims={}, header={"kid": key.kid, "typ": "JWT"},
                                    expires_in=ASSERTION_SECONDS)


def _token(config: Configuration, client: Client, step: str, *, timeout: float,
           **params: Any) -> Token:
    if client.key is not None:
        session = OAuth2Session(client.client_id, token_endpoint_auth_method="private_key_jwt")
        session.register_client_auth_method(_Assertion(client))
    else:
        session = OAuth2Session(client.client_id, token_endpoint_auth_method="none")
    before = dt.datetime.now(dt.timezone.utc)
    try:
        with session:
            answer = session.fetch_token(config.token_endpoint, timeout=timeout,
                                         headers={"Accept": "application/json"}, **params)
    except AuthlibBaseError as error:  # the server's OAuth error, e.g. invalid_grant
        raise SmartError(f"{step} was refused: {error.error or 'error'}"
                         + (f" ({_short(error.description)})" if error.description else "")
                         ) from None
    except requests.RequestException as error:
        raise SmartError(f"{step} failed: {http_json.network_reason(error)}") from None
    except ValueError:  # not JSON
        raise SmartError(f"{step} failed: the answer is not a token") from None
    return _parse_token(answer, before)


def _parse_token(answer: Mapping[str, Any], before: dt.datetime) -> Token:
    access = answer.get("access_token")
    if not isinstance(access, str) or not access:
        raise SmartError("the token answer has no access_token")
    if str(answer.get("token_type", "")).lower() != "bearer":
        raise SmartError("the token answer is not a Bearer token")
    try:
        lifetime = int(answer.get("expires_in") or 300)
    except (TypeError, ValueError):
        lifetime = 300
    # counted from before the request: never later than the server's own reckoning
    expires_at = before + dt.timedelta(seconds=max(0, lifetime))
    return Token(access_token=access, expires_at=expires_at,
                 scope=str(answer.get("scope") or ""),
                 refresh_token=_string(answer.get("refresh_token")),
                 patient=_string(answer.get("patient")),
                 encounter=_string(answer.get("encounter")),
                 id_token=_string(answer.get("id_token")))


# -- HTTP -------------------------------------------------------------------------------

def _get_json(url: str, *, timeout: float, what: str,
              headers: Mapping[str, str] | None = None) -> Any:
    try:
        return http_json.get_json(url, timeout=timeout, max_bytes=MAX_ANSWER, headers=headers)
    except http_json.FetchError as error:
        raise SmartError(f"reading {what} failed: {error.reason}") from None


def _same_security(iss: str, url: str) -> bool:
    """An endpoint must be https, or http only when the FHIR base itself is (a test
    EHR on loopback): a token never travels in clear to an https EHR's server."""
    scheme = urlsplit(url).scheme
    return bool(urlsplit(url).netloc) and (scheme == "https" or
                                           (scheme == "http" and urlsplit(iss).scheme == "http"))


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _short(text: Any) -> str:
    words = " ".join(str(text).split())
    return words if len(words) <= 200 else words[:199] + "…"
