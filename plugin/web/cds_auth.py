"""Who may call the CDS Hooks services: the CDS client's JWT (CDS Hooks 2.0, "Trusting
CDS Clients"), checked with joserfc.

Every service and feedback call carries ``Authorization: Bearer <JWT>`` signed by the
EHR. We accept it only when all of these hold:

- header: ``alg`` is RS384 or ES384 (never ``none`` or an HMAC), ``typ`` is ``JWT`` and
  a ``kid`` names the key;
- ``iss`` is an allow-listed client (config ``CDS_HOOKS_CLIENTS``); if the header has a
  ``jku`` it is exactly the one configured for that issuer;
- the signature verifies with that issuer's keys: inline ``jwks`` when configured,
  else the JWK Set fetched from its configured ``jku`` (``RemoteKeys``: only that URL,
  never one from the token; cached, refetched for a new ``kid`` at most every
  ``MIN_REFETCH_SECONDS``). A fetch that fails refuses the call, and the log says why;
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

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..core import json_input
from ..errors import InputError
from .cds_fetch import FetchError, secure_url

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
#: What a CDS_HOOKS_CLIENTS entry may hold.
ENTRY_KEYS = frozenset({"jwks", "jku", "fhir_servers"})


class CdsAuthError(Exception):
    """The call is not authenticated. ``reason`` is safe to log and to return: it
    names the failed check, never key material or patient data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Client:
    """An allow-listed CDS client: its issuer and where its public keys come from
    (inline ``keys``, else ``remote``: fetched from the configured ``jku``)."""

    iss: str
    keys: KeySet | None
    jku: str | None
    remote: RemoteKeys | None = None
    #: The FHIR servers data may be fetched from for this client (URL prefixes, no
    #: trailing slash); None: any https server its calls name.
    fhir_servers: tuple[str, ...] | None = None

    def key_set(self, kid: str) -> KeySet:
        """The keys to verify a token naming ``kid`` with; raises CdsAuthError."""
        if self.keys is not None:
            return self.keys
        assert self.remote is not None  # load_clients gives every client one or the other
        return self.remote.key_set(kid)


#: ``url -> JSON``: reads a JWK Set document (the app's: ``cds_fetch.get_json``, with a
#: timeout and a size cap); raises ``cds_fetch.FetchError``.
FetchJson = Callable[[str], Any]


class RemoteKeys:
    """A client's public keys behind its configured ``jku``, fetched from exactly that
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

    def key_set(self, kid: str) -> KeySet:
        with self._lock:
            now = self._clock()
            if self._keys is None or now - self._fetched_at >= self._cache_seconds:
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
            raise CdsAuthError("the issuer's keys could not be fetched from its jku "
                               f"(retried at most every {self._min_interval:g} s)")
        try:
            self._keys = key_set(self._fetch(self.url), "the JWK Set at the jku")
        except (FetchError, ValueError) as error:
            self._failed_at = now
            reason = error.reason if isinstance(error, FetchError) else str(error)
            log.warning("fetching the keys of CDS client %s from %s failed: %s",
                        self.iss, self.url, reason)
            if keep:
                return
            self._keys = None
            raise CdsAuthError(f"the issuer's keys could not be fetched from its jku "
                               f"({reason})") from None
        self._fetched_at = now


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


def load_clients(config: Any, *, fetch: FetchJson, cache_seconds: float) -> dict[str, Client]:
    """``CDS_HOOKS_CLIENTS`` checked at start-up: a broken key stops the app, not a call.
    Keys behind a ``jku`` are fetched with ``fetch`` on first use (not at start-up: the
    EHR may be down then) and kept ``cache_seconds``."""
    if not isinstance(config, Mapping):
        raise ValueError("CDS_HOOKS_CLIENTS must map each issuer to {'jwks': ...} or {'jku': ...}")
    clients = {}
    for iss, entry in config.items():
        if not isinstance(iss, str) or not iss or not isinstance(entry, Mapping) \
                or not ({"jwks", "jku"} & set(entry)) or set(entry) - ENTRY_KEYS:
            raise ValueError(f"CDS_HOOKS_CLIENTS[{iss!r}] must be {{'jwks': {{...}}}} and/or "
                             "{'jku': 'https://...'} (and optionally 'fhir_servers')")
        jku = entry.get("jku")
        if jku is not None and not (isinstance(jku, str) and secure_url(jku)):
            raise ValueError(f"CDS_HOOKS_CLIENTS[{iss!r}].jku must be an https URL "
                             "(http only to this machine)")
        servers = _fhir_servers(entry.get("fhir_servers"), iss)
        if "jwks" in entry:
            keys = key_set(entry["jwks"], f"CDS_HOOKS_CLIENTS[{iss!r}].jwks")
            clients[iss] = Client(iss, keys, jku, fhir_servers=servers)
        else:
            remote = RemoteKeys(iss, jku, fetch, cache_seconds=cache_seconds)
            clients[iss] = Client(iss, None, jku, remote, fhir_servers=servers)
    return clients


def _fhir_servers(value: Any, iss: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(
            isinstance(v, str) and urlsplit(v).scheme in ("http", "https")
            and urlsplit(v).hostname and not urlsplit(v).query for v in value):
        raise ValueError(f"CDS_HOOKS_CLIENTS[{iss!r}].fhir_servers must be a list of "
                         "http(s) FHIR base URLs")
    return tuple(v.rstrip("/") for v in value)


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
        # the strict reader: NaN, Infinity, a lone surrogate or a NUL in a claim is a
        # malformed token here, never a crash in the replay store or the clock
        claims = json_input.parse(unverified.payload, "The token's claims")
    except InputError as exc:
        raise CdsAuthError(f"malformed token ({exc.message})") from exc
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
    keys = client.key_set(header["kid"])
    try:
        verified = jwt.decode(token, keys, algorithms=list(ALGORITHMS)).claims
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
        if isinstance(claims.get(name), bool) or not isinstance(claims.get(name), (int, float)) \
                or not math.isfinite(claims[name]):
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
