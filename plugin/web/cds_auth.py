"""Who may call the CDS Hooks services: the CDS client's JWT (CDS Hooks 2.0, "Trusting
CDS Clients").

Every service and feedback call carries ``Authorization: Bearer <JWT>`` signed by the
EHR, checked by ``client_jwt.verify`` (the one home of JWT and JWK Set checks, shared
with the SMART Backend Services token endpoint): RS384/ES384, ``typ`` JWT, a ``kid``;
``iss`` an allow-listed client (config ``CDS_HOOKS_CLIENTS``) whose keys are inline
``jwks`` or fetched from its configured ``jku`` (only that URL, never one from the
token); ``aud`` the exact URL being called; ``exp`` at most five minutes ahead; ``jti``
never seen before from that issuer (``adapters.replay`` over the database, so every
app process refuses a token any of them has accepted).

What stays here is the CDS side: the allow-list (``load_clients``, checked at start-up)
and what each client may be fetched from (``fhir_servers``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from joserfc.jwk import KeySet

from .cds_fetch import secure_url
from .client_jwt import (ALGORITHMS, LEEWAY, MAX_JTI_LENGTH, MAX_KEYS, MAX_LIFETIME,
                         MAX_TOKEN_LENGTH, MIN_REFETCH_SECONDS, FetchJson, FirstUse,
                         RemoteKeys, TokenRefused, bearer_token, key_set, verify)

__all__ = ["ALGORITHMS", "LEEWAY", "MAX_JTI_LENGTH", "MAX_KEYS", "MAX_LIFETIME",
           "MAX_TOKEN_LENGTH", "MIN_REFETCH_SECONDS", "CdsAuthError", "Client", "FetchJson",
           "FirstUse", "RemoteKeys", "bearer_token", "key_set", "load_clients", "verify"]

#: A CDS call that is not authenticated (the shared refusal, under its CDS name).
CdsAuthError = TokenRefused
#: What a CDS_HOOKS_CLIENTS entry may hold.
ENTRY_KEYS = frozenset({"jwks", "jku", "fhir_servers"})


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


