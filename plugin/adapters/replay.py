"""The ``jti`` replay cache of client JWTs, shared by every app process through the
database: CDS Hooks calls (the EHR's JWT) and SMART Backend Services client assertions
at the token endpoint (``iss`` = the client id), one memory per issuer.

A client's JWT may be used once. Several app processes (gunicorn workers, hosts
behind a load balancer) must agree on "once", so the memory of used ``jti`` values
lives in the store's table ``cds_jtis`` (primary key ``iss, jti``), not in a process.

``first_use`` inserts the row and lets the primary key decide: the insert that commits
first wins; any other, in this process or another, gets an IntegrityError (PostgreSQL
waits for the winner's commit, SQLite's writers queue behind BEGIN IMMEDIATE) and the
token is a replay. There is no read-then-write window to race through.

A row is only needed while its token could still pass the ``exp`` check (``exp`` plus
the clock-skew leeway); after that the check refuses the token by itself. Expired rows
are deleted now and then (about one call in ``PURGE_EVERY``), at most ``PURGE_BATCH``
at a time, through the ``expires_at`` index, so no call pays for a large sweep.
"""
from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from sqlalchemy import delete, exc, insert, select, tuple_

from . import engine as engine_mod
from .engine import StoreError
from .store import Store
from .tables import cds_jtis

#: Rows stay this long after their token's ``exp`` (the JWT checks' clock-skew leeway).
KEEP_AFTER_EXPIRY = dt.timedelta(seconds=60)
#: About one call in this many also deletes expired rows.
PURGE_EVERY = 32
#: At most this many expired rows are deleted by one purge.
PURGE_BATCH = 500


def first_use(store: Store, iss: str, jti: str, expires_at: dt.datetime, *,
              now: dt.datetime | None = None,
              chance: Callable[[], float] = random.random) -> bool:
    """Record that ``iss`` used ``jti`` (a token valid until ``expires_at``, aware);
    False when it was used before, by any process sharing the database.

    Raises ``StoreError`` when the database cannot be reached: the caller must then
    refuse the call (fail closed), as it cannot know whether the token is a replay.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    writer = engine_mod.writer(store.engine)
    try:
        with writer.begin() as conn:
            conn.execute(insert(cds_jtis).values(
                iss=iss, jti=jti, expires_at=expires_at + KEEP_AFTER_EXPIRY))
    except exc.IntegrityError:
        return False  # the primary key: someone (maybe another process) was first
    except exc.SQLAlchemyError as error:
        raise StoreError(f"cannot record the token id: {engine_mod.first_line(error)}",
                         original_error=error) from error
    if chance() * PURGE_EVERY < 1:
        purge(store, now=now)
    return True


def purge(store: Store, *, now: dt.datetime | None = None, limit: int = PURGE_BATCH) -> int:
    """Delete up to ``limit`` rows whose tokens have expired; the number deleted.

    A failure is not the caller's problem (the rows are deleted next time), so it is
    swallowed and 0 returned.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    expired = (select(cds_jtis.c.iss, cds_jtis.c.jti)
               .where(cds_jtis.c.expires_at < now)
               .order_by(cds_jtis.c.expires_at).limit(limit))
    try:
        with engine_mod.writer(store.engine).begin() as conn:
            result = conn.execute(delete(cds_jtis).where(
                tuple_(cds_jtis.c.iss, cds_jtis.c.jti).in_(expired)))
    except exc.SQLAlchemyError:
        return 0
    return int(result.rowcount or 0)
