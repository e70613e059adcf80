"""OpenID Connect id tokens, verified in one place: hospital single sign-on
(``web/sso``), sign-in by EHR launch and the step-up before a signature all call
``verify``.

Authlib's ``authorize_access_token`` checks the signature, ``iss``, ``nonce`` and
``exp`` but ``aud`` only through ``azp`` (a token with ``aud=["other"]`` and
``azp`` = us passes), and never the age of ``auth_time`` (fhir.md section 10.4). So
each claim is checked here explicitly (OpenID Connect Core 3.1.3.7):

- the signature, with a key from the issuer's published ``jwks_uri``, asymmetric
  algorithms only (``none`` and HMAC are refused: a shared secret is no proof of who
  signed);
- ``iss`` is the issuer we expect; ``aud`` is our client id, or a list holding it *and*
  ``azp`` naming us (a token meant for another client is refused, whatever its azp);
- ``exp`` is in the future, ``iat`` is present; ``nonce`` equals the one we sent;
- for a re-authentication, ``auth_time`` is present and not older than the request
  that asked for it (``authenticated_after``).

``IdTokenError`` says in words which check failed (safe to show: no token, no claim
values besides our own settings).
"""
from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..errors import PluginError
from . import http_json

__all__ = ["ALGORITHMS", "IdClaims", "IdTokenError", "LEEWAY", "fetch_keys", "verify"]

#: Asymmetric signature algorithms accepted (never ``none``, never HS*).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512")
#: Clock difference tolerated between us and the issuer.
LEEWAY = dt.timedelta(seconds=60)
MAX_KEYS = 256 * 1024


class IdTokenError(PluginError):
    """The id token is not one to trust; the message says which check failed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class IdClaims:
    """What the service uses of a verified id token."""

    issuer: str
    subject: str
    auth_time: dt.datetime | None
    fhir_user: str | None = None
    name: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def text(self, name: str) -> str | None:
        value = self.claims.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None


def fetch_keys(jwks_uri: str, *, timeout: float) -> KeySet:
    """The issuer's published public keys."""
    try:
        document = http_json.get_json(jwks_uri, timeout=timeout, max_bytes=MAX_KEYS)
        return KeySet.import_key_set(document)
    except http_json.FetchError as error:
        raise IdTokenError(f"the identity provider's keys could not be read: "
                           f"{error.reason}") from None
    except (JoseError, ValueError, TypeError, KeyError):
        raise IdTokenError("the identity provider's keys are not a usable JWK set") from None


def verify(id_token: Any, keys: KeySet, *, issuer: str, client_id: str,
           nonce: str | None, now: dt.datetime,
           authenticated_after: dt.datetime | None = None) -> IdClaims:
    """The claims of ``id_token`` once every check above has passed."""
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        raise IdTokenError("no id token came with the answer")
    try:
        claims = dict(jwt.decode(id_token, keys, algorithms=list(ALGORITHMS)).claims)
    except (JoseError, ValueError, TypeError, KeyError):
        raise IdTokenError("the id token's signature does not verify with the identity "
                           "provider's keys") from None
    if claims.get("iss") != issuer:
        raise IdTokenError("the id token was issued by another server than the one "
                           "signed in with")
    _check_audience(claims, client_id)
    exp, iat = _time(claims.get("exp")), _time(claims.get("iat"))
    if exp is None or iat is None:
        raise IdTokenError("the id token has no expiry or issue time")
    if exp + LEEWAY < now:
        raise IdTokenError("the id token has expired")
    if nonce is not None and not (isinstance(claims.get("nonce"), str) and
                                  hmac.compare_digest(claims["nonce"], nonce)):
        raise IdTokenError("the id token does not answer this sign-in (wrong or missing "
                           "nonce)")
    auth_time = _time(claims.get("auth_time"))
    if authenticated_after is not None and (auth_time is None or
                                            auth_time + LEEWAY < authenticated_after):
        raise IdTokenError("the identity provider did not ask for your password again "
                           "(no fresh auth_time)")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise IdTokenError("the id token names no subject")
    fhir_user = claims.get("fhirUser")
    name = claims.get("name")
    return IdClaims(issuer=issuer, subject=subject, auth_time=auth_time,
                    fhir_user=fhir_user if isinstance(fhir_user, str) and fhir_user else None,
                    name=name.strip() if isinstance(name, str) and name.strip() else None,
                    claims=claims)


def _check_audience(claims: Mapping[str, Any], client_id: str) -> None:
    aud, azp = claims.get("aud"), claims.get("azp")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if client_id not in audiences:
        raise IdTokenError("the id token was issued for another application (aud)")
    if azp is not None and azp != client_id:
        raise IdTokenError("the id token was issued for another application (azp)")
    if len(audiences) > 1 and azp != client_id:
        raise IdTokenError("the id token is shared with other applications and does not "
                           "name this one as its authorized party (azp)")


def _time(value: Any) -> dt.datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
