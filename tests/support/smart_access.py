"""SMART access for the test FHIR server: verifying the auth server's access tokens and
checking SMART scopes, apart from the FHIR server's routing so each stays small.

``verify(authorization, issuer, audience)`` turns an ``Authorization`` header into an
``Access`` (or raises ``Unauthorized``: a 401); ``Access.require(type, letter)`` says
which patient, if any, the access is limited to (or raises ``Forbidden``: a 403).
Scopes: SMART v2 ``(patient|user|system)/(Type|*).cruds`` subsets and v1 ``read``,
``write``, ``*``; the keys come from ``<issuer>/jwks`` (fetched once, refetched on an
unknown kid).
"""
from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet

SCOPE = re.compile(r"(patient|user|system)/(\*|[A-Z][A-Za-z]*)\.(\*|read|write|c?r?u?d?s?)"
                   r"(?:\?.*)?")


class Unauthorized(Exception):
    """401: no token, or one this server cannot accept (the text names why)."""


class Forbidden(Exception):
    """403: a good token without the scope (or patient) the call needs."""


@dataclass(frozen=True)
class Access:
    """What one verified access token allows."""

    sub: str
    scopes: tuple[tuple[str, str, frozenset[str]], ...]  # (context, type or *, letters)
    patient: str | None

    def contexts(self, kind: str, letter: str) -> set[str]:
        return {context for context, scoped, letters in self.scopes
                if scoped in ("*", kind) and letter in letters}

    def require(self, kind: str, letter: str) -> str | None:
        """The patient this access is limited to for (kind, letter), or None for all;
        Forbidden when no scope grants it."""
        contexts = self.contexts(kind, letter)
        if not contexts:
            raise Forbidden(f"no scope grants '{letter}' on {kind} "
                            f"(e.g. user/{kind}.{letter} or patient/{kind}.{letter})")
        if contexts == {"patient"}:
            if not self.patient:
                raise Forbidden("patient/ scopes need a token with a patient context")
            return self.patient
        return None


def _letters(permission: str) -> frozenset[str]:
    if permission == "*":
        return frozenset("cruds")
    if permission == "read":
        return frozenset("rs")
    if permission == "write":
        return frozenset("cud")
    return frozenset(permission)


def _parse_scopes(scope: str) -> tuple[tuple[str, str, frozenset[str]], ...]:
    parsed = []
    for item in scope.split():
        match = SCOPE.fullmatch(item)
        if match and match.group(3):
            parsed.append((match.group(1), match.group(2), _letters(match.group(3))))
    return tuple(parsed)


JWKS: dict[str, Any] = {"keys": None}
JWKS_LOCK = threading.Lock()


def _key(issuer: str, kid: str) -> Any:
    """The auth server's public key ``kid`` (fetched once, refetched on an unknown kid)."""
    with JWKS_LOCK:
        for attempt in range(2):
            if JWKS["keys"] is None or attempt:
                try:
                    with urllib.request.urlopen(f"{issuer}/jwks", timeout=5) as response:
                        JWKS["keys"] = KeySet.import_key_set(json.loads(response.read()))
                except (OSError, ValueError):
                    raise Unauthorized("the authorization server's keys cannot be fetched") \
                        from None
            try:
                return JWKS["keys"].get_by_kid(kid)
            except Exception:  # joserfc's unknown-kid error: fetch once more
                continue
    raise Unauthorized("the token's kid is not one of the authorization server's keys")


def verify(authorization: str | None, issuer: str, audience: str) -> Access:
    """The access an ``Authorization: Bearer`` header grants on the server ``audience``."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a Bearer access token is required")
    token = token.strip()
    try:
        head = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except ValueError:
        raise Unauthorized("the access token is not a JWT") from None
    if not isinstance(header, dict) or header.get("alg") != "RS384" \
            or not isinstance(header.get("kid"), str):
        raise Unauthorized("the access token must be RS384 with a kid")
    try:
        claims = jwt.decode(token, _key(issuer, header["kid"]), algorithms=["RS384"]).claims
    except Unauthorized:
        raise
    except Exception:  # joserfc: bad signature or malformed token
        raise Unauthorized("the access token's signature does not verify") from None
    aud = claims.get("aud")
    if aud != audience and not (isinstance(aud, list) and audience in aud):
        raise Unauthorized("the access token is not for this server (aud)")
    if claims.get("iss") != issuer:
        raise Unauthorized("the access token was not issued by this EHR's server (iss)")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or exp <= time.time():
        raise Unauthorized("the access token has expired")
    scope = claims.get("scope")
    patient = claims.get("patient")
    return Access(sub=str(claims.get("sub")),
                  scopes=_parse_scopes(scope if isinstance(scope, str) else ""),
                  patient=patient if isinstance(patient, str) else None)
