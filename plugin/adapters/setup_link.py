"""The one-time link that creates the first account on a fresh installation.

While no user exists, ``serve`` asks for a link: a random token whose SHA-256 is
stored with an expiry (1 hour), so every gunicorn worker can check it and the database
never holds the token itself. The page that creates the first account takes the token
(``redeem``) in the same transaction that checks no user exists yet: it works once.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import delete, func, insert, select, update

from . import engine as engine_mod
from .store import Store
from .tables import setup_tokens, users

VALID_FOR = dt.timedelta(hours=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue(store: Store, *, now: dt.datetime) -> str | None:
    """A new token when no user exists (earlier unused tokens are dropped), else None."""
    token = secrets.token_urlsafe(32)
    with engine_mod.writer(store.engine).begin() as conn:
        if conn.execute(select(func.count()).select_from(users)).scalar_one():
            return None
        conn.execute(delete(setup_tokens))
        conn.execute(insert(setup_tokens).values(id=_digest(token), expires_at=now + VALID_FOR))
    return token


def valid(store: Store, token: str | None, *, now: dt.datetime) -> bool:
    """Whether ``token`` may still create the first account."""
    if not token or not isinstance(token, str):
        return False
    with store.engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(users)).scalar_one():
            return False
        row = conn.execute(select(setup_tokens).where(
            setup_tokens.c.id == _digest(token))).mappings().first()
    return bool(row) and row["used_at"] is None and row["expires_at"] > now


def redeem(store: Store, token: str, *, now: dt.datetime) -> bool:
    """Use the token up; True only for the one caller that did (single use)."""
    with engine_mod.writer(store.engine).begin() as conn:
        if conn.execute(select(func.count()).select_from(users)).scalar_one():
            return False
        used = conn.execute(update(setup_tokens).where(
            setup_tokens.c.id == _digest(token), setup_tokens.c.used_at.is_(None),
            setup_tokens.c.expires_at > now).values(used_at=now)).rowcount
    return used == 1
