"""Integrators of the FHIR API (SMART Backend Services clients) and their access tokens.

A client is registered by an administrator (``python -m plugin clients add``) with its
public keys (an inline JWK Set, or the URL it publishes them at: SMART prefers the URL,
so keys can rotate without us) and the ``system/`` scopes it may be granted. The id we
hand out is the OAuth ``client_id``, the ``iss`` and ``sub`` of its assertions.

Access tokens are opaque random strings, stored as their SHA-256 (like sign-in
sessions): a token is checked against the database on every call, so disabling a client
stops its tokens at once on every process, and a copy of the table hands out no access.
A JWT signed by the service's key would save that read, but would stay valid until it
expires after its client is disabled, unless every call read the client anyway.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exc, insert, select, update

from ..core import scopes as scopes_mod
from ..core.scopes import Scope
from ..errors import InputError
from . import engine as engine_mod
from .engine import StoreError
from .store import Store
from .tables import api_clients, api_tokens

MAX_NAME = 200


class ClientError(InputError):
    """A registration the store refuses (a duplicate name, an unknown client)."""


@dataclass(frozen=True)
class Client:
    """A registered integrator."""

    id: str
    name: str
    jwks: Mapping[str, Any] | None
    jwks_url: str | None
    scopes: tuple[Scope, ...]
    active: bool
    created: dt.datetime


@dataclass(frozen=True)
class Grant:
    """What a live access token lets its client do, and for which FHIR base."""

    client: Client
    scopes: tuple[Scope, ...]
    audience: str
    expires_at: dt.datetime


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add(store: Store, name: str, *, jwks: Mapping[str, Any] | None, jwks_url: str | None,
        scopes: tuple[Scope, ...], now: dt.datetime) -> Client:
    """Register a client (keys and scopes already checked by the caller)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise ClientError(f"A client name needs 1 to {MAX_NAME} printable characters.")
    if (jwks is None) == (jwks_url is None):
        raise ClientError("Give the client's keys as --jwks FILE or --jwks-url URL (one).")
    client_id = str(uuid.uuid4())
    try:
        with engine_mod.writer(store.engine).begin() as conn:
            conn.execute(insert(api_clients).values(
                id=client_id, name=name, jwks=dict(jwks) if jwks else None,
                jwks_url=jwks_url, scope=scopes_mod.render(scopes), active=True,
                created=now, updated=now))
    except exc.IntegrityError as error:
        raise ClientError(f"A client named {name!r} is already registered.") from error
    except exc.SQLAlchemyError as error:
        raise StoreError(f"cannot register the client: {engine_mod.first_line(error)}",
                         original_error=error) from error
    return Client(client_id, name, jwks, jwks_url, scopes, True, now)


def get(store: Store, client_id: str) -> Client | None:
    if not isinstance(client_id, str) or len(client_id) > 64:
        return None
    with store.engine.connect() as conn:
        row = conn.execute(select(api_clients).where(api_clients.c.id == client_id)
                           ).mappings().first()
    return _client(row) if row else None


def all_clients(store: Store) -> list[Client]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(api_clients).order_by(api_clients.c.name)).mappings().all()
    return [_client(row) for row in rows]


def disable(store: Store, name_or_id: str, *, now: dt.datetime) -> Client:
    """Disable a client: no new token, and its tokens stop working (deleted)."""
    with engine_mod.writer(store.engine).begin() as conn:
        row = conn.execute(select(api_clients).where(
            (api_clients.c.id == name_or_id) | (api_clients.c.name == name_or_id))
        ).mappings().first()
        if row is None:
            raise ClientError(f"No client {name_or_id!r}.")
        conn.execute(update(api_clients).where(api_clients.c.id == row["id"])
                     .values(active=False, updated=now))
        conn.execute(delete(api_tokens).where(api_tokens.c.client_id == row["id"]))
    return _client({**row, "active": False})


def issue(store: Store, client: Client, granted: tuple[Scope, ...], *, audience: str,
          now: dt.datetime, lifetime: dt.timedelta) -> str:
    """A new access token for ``client`` (returned once; only its hash is kept). The
    client's expired tokens are deleted on the way."""
    token = secrets.token_urlsafe(32)
    with engine_mod.writer(store.engine).begin() as conn:
        conn.execute(delete(api_tokens).where(api_tokens.c.client_id == client.id,
                                              api_tokens.c.expires_at < now))
        conn.execute(insert(api_tokens).values(
            id=digest(token), client_id=client.id, scope=scopes_mod.render(granted),
            audience=audience, issued=now, expires_at=now + lifetime))
    return token


def grant_of(store: Store, token: str, *, now: dt.datetime) -> Grant | None:
    """What ``token`` grants now; None when it is unknown, expired or its client is
    disabled."""
    if not token or len(token) > 512:
        return None
    query = (select(api_tokens, api_clients.c.name, api_clients.c.jwks,
                    api_clients.c.jwks_url, api_clients.c.active,
                    api_clients.c.scope.label("registered"), api_clients.c.created)
             .join(api_clients, api_clients.c.id == api_tokens.c.client_id)
             .where(api_tokens.c.id == digest(token)))
    with store.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None or not row["active"] or row["expires_at"] <= now:
        return None
    client = _client({"id": row["client_id"], "name": row["name"], "jwks": row["jwks"],
                      "jwks_url": row["jwks_url"], "scope": row["registered"],
                      "active": True, "created": row["created"]})
    return Grant(client, scopes_mod.parse_all(row["scope"]), row["audience"],
                 row["expires_at"])


def _client(row: Mapping[str, Any]) -> Client:
    return Client(str(row["id"]), row["name"], row["jwks"], row["jwks_url"],
                  scopes_mod.parse_all(row["scope"]), bool(row["active"]), row["created"])
