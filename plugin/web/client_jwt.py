"""JWTs signed by a client's own keys, checked with joserfc: the one home of JWK Sets,
of fetching them from a client's JWKS URL, and of the checks every client assertion
passes. Two callers: CDS Hooks (``cds_auth``: the EHR's JWT on each service call) and
the SMART Backend Services token endpoint (``oauth_token``: an integrator's client
assertion).

A token is accepted only when all of these hold:

- header: ``alg`` is RS384 or ES384 (never ``none`` or an HMAC), ``typ`` is ``JWT`` and
  a ``kid`` names one of the issuer's registered keys;
- ``iss`` is a known issuer (and, for a client assertion, ``sub`` equals it); if the
  header has a ``jku`` it is exactly the one registered for that issuer;
- the signature verifies with that issuer's keys: inline ones, or the JWK Set fetched
  from its registered URL (``RemoteKeys``: only that URL, never one from the token;
  kept as long as the configured cache time and the answer's ``Cache-Control`` both
  allow; refetched once for a new ``kid``, at most every ``MIN_REFETCH_SECONDS``);
- ``aud`` (string or array) names the exact URL being called;
- ``exp`` is in the future and at most five minutes ahead, ``iat`` is not in the future
  (both with a minute's leeway for clock skew), ``jti`` is present and has not been
  seen before from that issuer (``replay``: the app passes ``adapters.replay`` over the
  database, so every process refuses a token any of them has accepted).

Authlib's own client-assertion check is not used: it refuses RS384/ES384 and does not
cap ``exp`` (shared/fhir.md §10.3). Refusals are ``TokenRefused`` whose ``reason`` names
the failed check, safe to log and to return: never key material or patient data.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..adapters.http_json import FetchError, Fetched
from ..core import json_input
from ..errors import InputError

log = logging.getLogger(__name__)

ALGORITHMS = ("RS384", "ES384")
#: Clock skew tolerated between the EHR and us, in seconds.
LEEWAY = 60
#: The spec's longest token lifetime (exp at most 5 minutes ahead).
MAX_LIFETIME = 300
MAX_TOKEN_LENGTH = 16 * 1024
MAX_JTI_LENGTH = 256
#: A client's keys behind its jku are fetched again for an unknown kid, or after a
#: failed fetch, at most this often (s).
MIN_REFETCH_SECONDS = 15.0
#: Most keys a JWK Set may hold (an EHR publishes a few; rotation overlaps two or three).
MAX_KEYS = 20
class TokenRefused(Exception):
    """The token is not accepted. ``reason`` is safe to log and to return: it
    names the failed check, never key material or patient data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: ``url -> JSON`` (or ``http_json.Fetched``: then its ``Cache-Control`` is respected):
#: reads a JWK Set document, with a timeout and a size cap; raises ``FetchError``.
FetchJson = Callable[[str], Any]


class RemoteKeys:
    """A client's public keys behind its registered JWKS URL, fetched from exactly that
    URL (never from one a token names), validated, and kept ``cache_seconds``.

    A token naming a ``kid`` not among them (the EHR rotated its keys) triggers one
    refetch, at most once per ``min_interval``; a failed fetch is not retried sooner
    either. So a flood of tokens with made-up kids, or calls while the EHR's key server
    is down, cost that server at most one request per interval. One lock per client:
    concurrent calls wait for one fetch instead of each making their own.
    """

    def __init__(self, iss: str, url: str, fetch: FetchJson, *, cache_seconds: float,
                 min_interval: float = MIN_REFETCH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.iss, self.url = iss, url
        self._fetch, self._clock = fetch, clock
        self._cache_seconds, self._min_interval = cache_seconds, min_interval
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at = self._refetched_at = self._failed_at = -math.inf
        self._kept_for = cache_seconds

    def key_set(self, kid: str) -> KeySet:
        with self._lock:
            now = self._clock()
            if self._keys is None or now - self._fetched_at >= self._kept_for:
                self._refresh(now)
            elif kid not in {k.kid for k in self._keys.keys} \
                    and now - self._refetched_at >= self._min_interval:
                self._refetched_at = now
                self._refresh(now, keep=True)
            assert self._keys is not None
            return self._keys

    def _refresh(self, now: float, *, keep: bool = False) -> None:
        """Fetch the keys; on failure keep the current ones if ``keep`` (they are still
        within their cache time), else refuse the call."""
        if now - self._failed_at < self._min_interval:
            if keep:
                return
            raise TokenRefused("the issuer's keys could not be fetched from its jku "
                               f"(retried at most every {self._min_interval:g} s)")
        try:
            fetched = self._fetch(self.url)
            if not isinstance(fetched, Fetched):
                fetched = Fetched(fetched, None)
            self._keys = key_set(fetched.data, "the JWK Set at the jku")
        except (FetchError, ValueError) as error:
            self._failed_at = now
            reason = error.reason if isinstance(error, FetchError) else str(error)
            log.warning("fetching the keys of client %s from %s failed: %s",
                        self.iss, self.url, reason)
            if keep:
                return
            self._keys = None
            raise TokenRefused(f"the issuer's keys could not be fetched from its jku "
                               f"({reason})") from None
        self._fetched_at = now
        # kept no longer than the server allows (SMART: JWKS cache <= Cache-Control)
        self._kept_for = self._cache_seconds if fetched.max_age is None \
            else min(self._cache_seconds, fetched.max_age)


def key_set(data: Any, where: str) -> KeySet:
    """A JWK Set of public RS/EC keys; ValueError naming the problem (not the keys)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list) \
            or not data["keys"] or len(data["keys"]) > MAX_KEYS:
        raise ValueError(f"{where} is not a usable JWK Set: expected {{'keys': [...]}} "
                         f"with 1 to {MAX_KEYS} keys")
    try:
        keys = KeySet.import_key_set(dict(data))  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{where} is not a usable JWK Set: {exc}") from exc
    if any(k.is_private for k in keys.keys):
        raise ValueError(f"{where} holds a private key; only public keys belong there")
    return keys


class Issuer(Protocol):
    """What ``verify`` needs of a known issuer: its registered JWKS URL (or None) and
    its keys for a ``kid`` (raising TokenRefused when they cannot be had)."""

    jku: str | None

    def key_set(self, kid: str) -> KeySet: ...


def bearer_token(authorization: str | None) -> str:
    """The JWT of an ``Authorization: Bearer`` header."""
    if not authorization:
        raise TokenRefused("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TokenRefused("Authorization must be 'Bearer <JWT>'")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenRefused("token too long")
    return token


#: ``(iss, jti, exp) -> bool``: records that the issuer used ``jti`` in a token valid
#: until ``exp`` (seconds since the epoch); False when it was used before.
FirstUse = Callable[[str, str, float], bool]


def verify(token: str, *, clients: Mapping[str, Issuer], audience: str,
           replay: FirstUse, now: float | None = None,
           subject_is_issuer: bool = False) -> dict[str, Any]:
    """The verified claims of ``token`` for a call to ``audience``; raises TokenRefused.
    ``subject_is_issuer``: a client assertion (RFC 7523 §3, SMART), whose ``sub`` must
    be its ``iss``."""
    now = time.time() if now is None else now
    try:
        unverified = jws.extract_compact(token.encode("ascii"))
        header = unverified.headers()
        # the strict reader: NaN, Infinity, a lone surrogate or a NUL in a claim is a
        # malformed token here, never a crash in the replay store or the clock
        claims = json_input.parse(unverified.payload, "The token's claims")
    except InputError as exc:
        raise TokenRefused(f"malformed token ({exc.message})") from exc
    except (JoseError, ValueError, UnicodeError, TypeError) as exc:
        raise TokenRefused("malformed token") from exc
    if header.get("alg") not in ALGORITHMS:
        raise TokenRefused(f"alg must be one of {', '.join(ALGORITHMS)}")
    if header.get("typ") != "JWT":
        raise TokenRefused("typ must be JWT")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise TokenRefused("kid is required")
    if not isinstance(claims, dict) or not isinstance(claims.get("iss"), str):
        raise TokenRefused("iss is required")
    client = clients.get(claims["iss"])
    if client is None:
        raise TokenRefused("unknown issuer")
    if "jku" in header and header["jku"] != client.jku:
        raise TokenRefused("jku is not the one configured for this issuer")
    keys = client.key_set(header["kid"])
    if header["kid"] not in {k.kid for k in keys.keys}:
        raise TokenRefused("kid is not one of the issuer's registered keys")
    try:
        verified = jwt.decode(token, keys, algorithms=list(ALGORITHMS)).claims
    except (JoseError, ValueError, TypeError) as exc:
        raise TokenRefused("signature does not verify with the issuer's keys") from exc
    _check_claims(verified, audience, now, require_iat=not subject_is_issuer)
    if subject_is_issuer and verified.get("sub") != verified["iss"]:
        raise TokenRefused("sub must equal iss (the client id)")
    if not replay(verified["iss"], verified["jti"], float(verified["exp"])):
        raise TokenRefused("jti already used (replayed token)")
    return verified


def _check_claims(claims: Mapping[str, Any], audience: str, now: float, *,
                  require_iat: bool = True) -> None:
    """CDS Hooks requires ``iat``; a SMART client assertion need not carry it (RFC 7523
    §3 makes it optional), but one that does must not be in the future."""
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in audiences:
        raise TokenRefused("aud does not name this service URL")
    for name in ("exp", "iat") if require_iat or "iat" in claims else ("exp",):
        if isinstance(claims.get(name), bool) or not isinstance(claims.get(name), (int, float)) \
                or not math.isfinite(claims[name]):
            raise TokenRefused(f"{name} is required (seconds since the epoch)")
    if claims["exp"] + LEEWAY < now:
        raise TokenRefused("token expired")
    if claims["exp"] > now + MAX_LIFETIME + LEEWAY:
        raise TokenRefused("exp is more than 5 minutes ahead")
    if "iat" in claims and claims["iat"] > now + LEEWAY:
        raise TokenRefused("iat is in the future")
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise TokenRefused("jti is required")
    if len(claims["jti"]) > MAX_JTI_LENGTH:
        raise TokenRefused(f"jti is longer than {MAX_JTI_LENGTH} characters")
