"""Server-side sign-in sessions: the cookie carries a random token, the database the
SHA-256 of it, so a sign-out, a lock-out or a disabled account ends the session on every
process at once, and a copy of the table hands out no session.

A session ends after ``idle`` without a request (autosaves count: each touches it) or
``lifetime`` after sign-in, whichever comes first. A new token is issued at every
sign-in (OWASP ASVS 3.2.1); none is ever reused.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update

from . import engine as engine_mod, users as users_mod
from .store import Store
from .tables import sessions, users

#: A session is touched at most this often (or a quarter of the idle timeout, if that is
#: shorter), so a page's burst of requests is one write.
TOUCH_SECONDS = 15


@dataclass(frozen=True)
class Session:
    id: str
    user_id: str
    created: dt.datetime
    last_seen: dt.datetime
    #: The account, read in the same query as the session (every request needs both).
    user: users_mod.User | None = None
    #: Patient mode: the PROM the tablet was handed to the patient for (else None).
    patient_prom_id: str | None = None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def begin(store: Store, user_id: str, *, now: dt.datetime) -> str:
    """A new session for ``user_id``; returns its token (for the cookie only)."""
    token = secrets.token_urlsafe(32)
    with engine_mod.writer(store.engine).begin() as conn:
        conn.execute(insert(sessions).values(id=digest(token), user_id=user_id, created=now,
                                             last_seen=now))
    return token


def current(store: Store, token: str | None, *, now: dt.datetime, idle: dt.timedelta,
            lifetime: dt.timedelta) -> Session | None:
    """The live session for ``token`` (touched: this request is activity), with its
    user, or None when there is none or it has timed out (then it is deleted).

    The session and its user are one query (a join): the access guard runs this on
    every request, and each round trip to the database is paid by all of them."""
    if not token or not isinstance(token, str):
        return None
    key = digest(token)
    query = (select(users, sessions.c.created.label("session_created"),
                    sessions.c.last_seen.label("session_last_seen"),
                    sessions.c.patient_prom_id.label("session_patient_prom_id"))
             .join_from(sessions, users, sessions.c.user_id == users.c.id)
             .where(sessions.c.id == key))
    with store.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        return None
    created, last_seen = row["session_created"], row["session_last_seen"]
    if now - last_seen > idle or now - created > lifetime:
        end(store, token)
        return None
    if (now - last_seen).total_seconds() >= min(TOUCH_SECONDS, idle.total_seconds() / 4):
        with engine_mod.writer(store.engine).begin() as conn:
            conn.execute(update(sessions).where(sessions.c.id == key).values(last_seen=now))
    user = users_mod.from_row(row)
    prom = row["session_patient_prom_id"]
    return Session(key, user.id, created, now, user,
                   None if prom is None else str(prom))


def end(store: Store, token: str | None) -> None:
    """Sign out: the session is gone for every process."""
    if token:
        with engine_mod.writer(store.engine).begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.id == digest(token)))


def end_all(store: Store, user_id: str) -> int:
    """End every session of a user (disabled, locked out, password changed)."""
    with engine_mod.writer(store.engine).begin() as conn:
        return conn.execute(delete(sessions).where(sessions.c.user_id == user_id)).rowcount
