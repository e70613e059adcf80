"""OpenID Connect, the client side, for hospital single sign-on and the step-up before a
signature: the providers' settings, discovery, the authorize URL and the code exchange,
with Authlib's ``OAuth2Session`` (the same client the SMART launch uses).

Each authorization asks for ``openid`` with PKCE S256, a single-use ``state`` and a
``nonce``; the id token that comes back is verified by ``id_tokens.verify`` (the one
home for it), never trusted from the token answer as it is. A provider whose discovery
document names another issuer than the one configured, or offers no S256, is refused.
An EHR is an OpenID provider too (SMART ``sso-openid-connect``): ``from_smart`` makes
the same ``Endpoints`` from its smart-configuration, so the step-up at the EHR is the
same round trip.
"""
from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session

from ..errors import PluginError
from . import http_json, smart
from .tables import ROLES

__all__ = ["Authorization", "Endpoints", "OidcError", "Provider", "STEP_UP", "authorization",
           "discover", "exchange", "from_smart", "providers_from"]

#: How a provider is asked to authenticate the person again before a signature.
STEP_UP = {"both": {"prompt": "login", "max_age": "0"}, "prompt": {"prompt": "login"},
           "max_age": {"max_age": "0"}, "none": None}
MAX_ANSWER = 256 * 1024


class OidcError(PluginError):
    """A sign-in step failed; the message is safe to show (no token, no code)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class Provider:
    """One hospital identity provider, as ``OIDC_PROVIDERS`` describes it."""

    name: str
    label: str
    issuer: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    key: smart.Client | None = field(default=None, repr=False)
    role_claim: str = "roles"
    roles: Mapping[str, str] = field(default_factory=dict)
    create_users: bool = False
    step_up: str = "both"

    def role_for(self, claims: Mapping[str, Any]) -> str | None:
        """The role the person's claim maps to (the first mapping, in settings order,
        whose value the claim holds), or None."""
        value = claims.get(self.role_claim)
        held = {value} if isinstance(value, str) else \
            {v for v in value if isinstance(v, str)} if isinstance(value, list) else set()
        return next((role for claim, role in self.roles.items() if claim in held), None)


@dataclass(frozen=True)
class Endpoints:
    """What a sign-in needs of a provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True)
class Authorization:
    """A started authorization: where to send the browser, and what to keep
    server-side until the callback (state, nonce, PKCE verifier)."""

    url: str
    state: str
    nonce: str
    code_verifier: str = field(repr=False)


def providers_from(configured: Sequence[Mapping[str, Any]] | None) -> dict[str, Provider]:
    """``OIDC_PROVIDERS`` by name; ValueError names the entry and what is wrong."""
    result: dict[str, Provider] = {}
    for index, entry in enumerate(configured or []):
        where = f"OIDC_PROVIDERS[{index}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} must be an object")
        name = entry.get("name")
        if not isinstance(name, str) or not name.isidentifier() or name in result:
            raise ValueError(f"{where} needs a unique name of letters, digits and _")
        for key in ("issuer", "client_id"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ValueError(f"{where} needs {key}")
        roles = entry.get("roles") or {}
        if not isinstance(roles, Mapping) or any(r not in ROLES for r in roles.values()):
            raise ValueError(f"{where}: roles maps claim values to {', '.join(ROLES)}")
        step_up = entry.get("step_up", "both")
        if step_up not in STEP_UP:
            raise ValueError(f"{where}: step_up is one of {', '.join(STEP_UP)}")
        key = None
        if entry.get("private_key_jwt"):
            key = smart.client_from({"client_id": entry["client_id"],
                                     "jwk_file": entry["private_key_jwt"]})
        elif not isinstance(entry.get("client_secret"), str) or not entry["client_secret"]:
            raise ValueError(f"{where} needs client_secret or private_key_jwt")
        result[name] = Provider(
            name=name, label=str(entry.get("label") or name), issuer=entry["issuer"],
            client_id=entry["client_id"], client_secret=entry.get("client_secret"), key=key,
            role_claim=str(entry.get("role_claim") or "roles"), roles=dict(roles),
            create_users=entry.get("create_users") is True, step_up=step_up)
    return result


def discover(issuer: str, *, timeout: float) -> Endpoints:
    """``{issuer}/.well-known/openid-configuration``, checked."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        document = http_json.get_json(url, timeout=timeout, max_bytes=MAX_ANSWER)
    except http_json.FetchError as error:
        raise OidcError(f"the identity provider could not be reached ({error.reason})") \
            from None
    if not isinstance(document, Mapping) or document.get("issuer") != issuer:
        raise OidcError("the identity provider's discovery document names another issuer")
    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise OidcError("the identity provider does not offer PKCE with S256")
    endpoints = [document.get(k) for k in ("authorization_endpoint", "token_endpoint",
                                           "jwks_uri")]
    if not all(isinstance(e, str) and http_json.secure_url(e) for e in endpoints):
        raise OidcError("the identity provider's discovery document lacks a usable "
                        "authorization, token or keys endpoint")
    return Endpoints(issuer, *endpoints)  # type: ignore[arg-type]


def from_smart(config: smart.Configuration) -> Endpoints:
    """The EHR's authorization server as an OpenID provider (for its id tokens)."""
    if not (config.issuer and config.jwks_uri and config.authorization_endpoint):
        raise OidcError("the EHR does not offer OpenID Connect sign-in (no issuer, "
                        "jwks_uri or authorization endpoint in its SMART configuration)")
    return Endpoints(config.issuer, config.authorization_endpoint, config.token_endpoint,
                     config.jwks_uri)


def authorization(endpoints: Endpoints, client_id: str, *, redirect_uri: str, scope: str,
                  extra: Mapping[str, str] | None = None) -> Authorization:
    """The authorize URL (code flow, PKCE S256, state, nonce, plus ``extra``)."""
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    session = OAuth2Session(client_id, redirect_uri=redirect_uri, scope=scope,
                            code_challenge_method="S256")
    url, _ = session.create_authorization_url(endpoints.authorization_endpoint, state=state,
                                              code_verifier=verifier, nonce=nonce,
                                              **dict(extra or {}))
    return Authorization(url=url, state=state, nonce=nonce, code_verifier=verifier)


def exchange(endpoints: Endpoints, client_id: str, *, code: str, redirect_uri: str,
             code_verifier: str, timeout: float, client_secret: str | None = None,
             key: smart.Client | None = None) -> Mapping[str, Any]:
    """The token answer for ``code`` (its ``id_token`` still to be verified)."""
    if key is not None:
        session = OAuth2Session(client_id, token_endpoint_auth_method="private_key_jwt")
        session.register_client_auth_method(smart.assertion(key))
    elif client_secret:
        session = OAuth2Session(client_id, client_secret,
                                token_endpoint_auth_method="client_secret_basic")
    else:
        session = OAuth2Session(client_id, token_endpoint_auth_method="none")
    try:
        with session:
            return session.fetch_token(endpoints.token_endpoint, timeout=timeout, code=code,
                                       grant_type="authorization_code",
                                       redirect_uri=redirect_uri, code_verifier=code_verifier,
                                       headers={"Accept": "application/json"})
    except AuthlibBaseError as error:
        raise OidcError(f"the identity provider refused the sign-in: "
                        f"{error.error or 'error'}") from None
    except requests.RequestException as error:
        raise OidcError(f"the identity provider could not be reached "
                        f"({http_json.network_reason(error)})") from None
    except ValueError:
        raise OidcError("the identity provider's answer is not a token") from None
