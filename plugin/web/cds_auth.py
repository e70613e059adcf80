"""Who may call the CDS Hooks services: the CDS client's JWT (CDS Hooks 2.0, "Trusting
CDS Clients"), checked with joserfc.

Every service and feedback call carries ``Authorization: Bearer <JWT>`` signed by the
EHR. We accept it only when all of these hold:

- header: ``alg`` is RS384 or ES384 (never ``none`` or an HMAC), ``typ`` is ``JWT`` and
  a ``kid`` names the key;
- ``iss`` is an allow-listed client (config ``CDS_HOOKS_CLIENTS``); if the header has a
  ``jku`` it is exactly the one configured for that issuer;
- the signature verifies with that issuer's configured keys (inline ``jwks``). Keys
  behind a ``jku`` URL are **not fetched** in this version: an issuer configured with
  only a ``jku`` is refused, and the log says why;
- ``aud`` (string or array) names the exact URL being called;
- ``exp`` is in the future and at most five minutes ahead, ``iat`` is not in the future
  (both with a minute's leeway for clock skew), ``jti`` is present and has not been
  seen before from that issuer.

Used ``jti`` values are remembered by whatever ``verify`` is given as ``replay`` (a
``FirstUse``): the app passes ``adapters.replay.first_use`` over the database, so every
app process (gunicorn workers, hosts behind a load balancer) refuses a token any of
them has accepted. The checks here stay pure; tests pass a set-backed function.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

log = logging.getLogger(__name__)

ALGORITHMS = ("RS384", "ES384")
#: Clock skew tolerated between the EHR and us, in seconds.
LEEWAY = 60
#: The spec's longest token lifetime (exp at most 5 minutes ahead).
MAX_LIFETIME = 300
MAX_TOKEN_LENGTH = 16 * 1024
MAX_JTI_LENGTH = 256


class CdsAuthError(Exception):
    """The call is not authenticated. ``reason`` is safe to log and to return: it
    names the failed check, never key material or patient data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Client:
    """An allow-listed CDS client: its issuer and where its public keys come from."""

    iss: str
    keys: KeySet | None
    jku: str | None


def load_clients(config: Any) -> dict[str, Client]:
    """``CDS_HOOKS_CLIENTS`` checked at start-up: a broken key stops the app, not a call."""
    if not isinstance(config, Mapping):
        raise ValueError("CDS_HOOKS_CLIENTS must map each issuer to {'jwks': ...} or {'jku': ...}")
    clients = {}
    for iss, entry in config.items():
        if not isinstance(iss, str) or not iss or not isinstance(entry, Mapping) \
                or not ({"jwks", "jku"} & set(entry)) or set(entry) - {"jwks", "jku"}:
            raise ValueError(f"CDS_HOOKS_CLIENTS[{iss!r}] must be {{'jwks': {{...}}}} and/or "
                             "{'jku': 'https://...'}")
        jku = entry.get("jku")
        if jku is not None and not (isinstance(jku, str) and jku.startswith("https://")):
            raise ValueError(f"CDS_HOOKS_CLIENTS[{iss!r}].jku must be an https URL")
        keys = None
        if "jwks" in entry:
            try:
                keys = KeySet.import_key_set(entry["jwks"])
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise ValueError(f"CDS_HOOKS_CLIENTS[{iss!r}].jwks is not a usable JWK "
                                 f"Set: {exc}") from exc
            if any(k.is_private for k in keys.keys):
                raise ValueError(f"CDS_HOOKS_CLIENTS[{iss!r}].jwks holds a private key; "
                                 "configure the client's public keys only")
        elif jku:
            log.warning("CDS client %s is configured with a jku only; fetching keys from a "
                        "jku is not enabled, so its calls will be refused", iss)
        clients[iss] = Client(iss, keys, jku)
    return clients


def bearer_token(authorization: str | None) -> str:
    """The JWT of an ``Authorization: Bearer`` header."""
    if not authorization:
        raise CdsAuthError("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise CdsAuthError("Authorization must be 'Bearer <JWT>'")
    if len(token) > MAX_TOKEN_LENGTH:
        raise CdsAuthError("token too long")
    return token


#: ``(iss, jti, exp) -> bool``: records that the issuer used ``jti`` in a token valid
#: until ``exp`` (seconds since the epoch); False when it was used before.
FirstUse = Callable[[str, str, float], bool]


def verify(token: str, *, clients: Mapping[str, Client], audience: str,
           replay: FirstUse, now: float | None = None) -> dict[str, Any]:
    """The verified claims of ``token`` for a call to ``audience``; raises CdsAuthError."""
    now = time.time() if now is None else now
    try:
        unverified = jws.extract_compact(token.encode("ascii"))
        header = unverified.headers()
        claims = json.loads(unverified.payload)
    except (JoseError, ValueError, UnicodeError, TypeError) as exc:
        raise CdsAuthError("malformed token") from exc
    if header.get("alg") not in ALGORITHMS:
        raise CdsAuthError(f"alg must be one of {', '.join(ALGORITHMS)}")
    if header.get("typ") != "JWT":
        raise CdsAuthError("typ must be JWT")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise CdsAuthError("kid is required")
    if not isinstance(claims, dict) or not isinstance(claims.get("iss"), str):
        raise CdsAuthError("iss is required")
    client = clients.get(claims["iss"])
    if client is None:
        raise CdsAuthError("unknown issuer")
    if "jku" in header and header["jku"] != client.jku:
        raise CdsAuthError("jku is not the one configured for this issuer")
    if client.keys is None:
        log.warning("refused a call from CDS client %s: its keys are configured by jku "
                    "only and fetching keys from a jku is not enabled", client.iss)
        raise CdsAuthError("no keys configured for this issuer (jku fetching is not enabled)")
    try:
        verified = jwt.decode(token, client.keys, algorithms=list(ALGORITHMS)).claims
    except (JoseError, ValueError, TypeError) as exc:
        raise CdsAuthError("signature does not verify with the issuer's keys") from exc
    _check_claims(verified, audience, now)
    if not replay(verified["iss"], verified["jti"], float(verified["exp"])):
        raise CdsAuthError("jti already used (replayed token)")
    return verified


def _check_claims(claims: Mapping[str, Any], audience: str, now: float) -> None:
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in audiences:
        raise CdsAuthError("aud does not name this service URL")
    for name in ("exp", "iat"):
        if isinstance(claims.get(name), bool) or not isinstance(claims.get(name), (int, float)):
            raise CdsAuthError(f"{name} is required (seconds since the epoch)")
    if claims["exp"] + LEEWAY < now:
        raise CdsAuthError("token expired")
    if claims["exp"] > now + MAX_LIFETIME + LEEWAY:
        raise CdsAuthError("exp is more than 5 minutes ahead")
    if claims["iat"] > now + LEEWAY:
        raise CdsAuthError("iat is in the future")
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise CdsAuthError("jti is required")
    if len(claims["jti"]) > MAX_JTI_LENGTH:
        raise CdsAuthError(f"jti is longer than {MAX_JTI_LENGTH} characters")
