"""The outbox: signed revisions' transaction Bundles on their way to the EHR.

``Store.sign(..., delivery=bundle)`` writes the row in the signature's own transaction,
so a signed revision always has its delivery queued. Workers (``python -m plugin
deliver``, as many processes as wanted) then:

1. ``claim`` a few due rows: each becomes ``in-flight`` under a lease (``claimed_by``,
   ``claimed_until``) and its ``attempts`` grows by one. PostgreSQL picks the rows with
   ``SELECT ... FOR UPDATE SKIP LOCKED``, so two workers never claim the same row; SQLite
   serialises the whole claim under ``BEGIN IMMEDIATE``. A row whose lease ran out (its
   worker died mid-delivery) is claimable again: the Bundle's conditional creates make
   the second POST a no-op on the EHR, so a crash never loses nor duplicates a record.
2. get a token for the job (the caller's provider: the exam's SMART user token or a
   backend-services token), deliver the Bundle (``ehr.deliver``, by the EHR profile),
   then mark the row ``delivered`` or ``failed``: a retryable failure waits with
   exponential backoff and jitter, and after ``max_attempts`` (or at once, for a
   failure that retrying cannot fix) the row is ``dead`` and shows why on the record
   page. No token, or a token the EHR refused (401), is a retryable failure: the token
   provider may well succeed next time.

``last_error`` holds an HTTP status and OperationOutcome texts, never the payload (it is
PHI). Nothing here logs a payload.
"""
from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update

from . import ehr
from . import engine as engine_mod
from .ehr_capability import Capabilities
from .ehr_http import Result
from .store import Store, _key
from .tables import outbox

__all__ = ["Job", "Policy", "Status", "claim", "delivered", "failed", "status_for", "work"]

#: ``last_error`` is cut to this many characters: enough for a status and a few issues.
ERROR_LENGTH = 500


@dataclass(frozen=True)
class Job:
    """One claimed delivery: ``attempts`` counts this one."""

    id: str
    exam_id: str
    revision: int
    payload: Mapping[str, Any]
    attempts: int
    claimed_by: str
    claimed_until: dt.datetime


@dataclass(frozen=True)
class Policy:
    """Retry policy: the n-th failed attempt waits about ``backoff_seconds * 2**(n-1)``
    (at most ``cap_seconds``; half of it is random so that workers restarting together
    do not retry in step); the ``max_attempts``-th failure is final."""

    max_attempts: int = 8
    backoff_seconds: float = 30.0
    cap_seconds: float = 6 * 3600.0

    def delay(self, attempts: int) -> float:
        full = min(self.cap_seconds, self.backoff_seconds * 2 ** max(0, attempts - 1))
        return full / 2 + random.uniform(0, full / 2)


@dataclass(frozen=True)
class Status:
    """Where a revision's delivery stands, for display."""

    revision: int
    state: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    delivered_at: dt.datetime | None


#: Why a job whose workers kept stopping mid-delivery was given up.
ABANDONED = ("the delivery was interrupted (worker stopped) on every attempt; "
             "it was given up")


def claim(store: Store, worker_id: str, limit: int, lease_seconds: float, *,
          max_attempts: int | None = None, now: dt.datetime | None = None) -> list[Job]:
    """Up to ``limit`` due deliveries, oldest first, now ``in-flight`` for ``worker_id``
    until the lease ends: pending ones whose time has come, and in-flight ones whose
    lease ran out. An expired job that has used ``max_attempts`` is ``dead`` instead:
    a payload that crashes every worker must not be retried for ever."""
    now = now or _now()
    until = now + dt.timedelta(seconds=lease_seconds)
    if max_attempts is not None:
        with engine_mod.writer(store.engine).begin() as conn:
            conn.execute(update(outbox).where(
                outbox.c.state == "in-flight", outbox.c.claimed_until < now,
                outbox.c.attempts >= max_attempts).values(
                    state="dead", last_error=ABANDONED, claimed_by=None,
                    claimed_until=None, updated=now))
    due = or_(and_(outbox.c.state == "pending", outbox.c.next_attempt_at <= now),
              and_(outbox.c.state == "in-flight", outbox.c.claimed_until < now))
    pick = (select(outbox.c.id).where(due)
            .order_by(outbox.c.next_attempt_at, outbox.c.created, outbox.c.id)
            .limit(max(0, int(limit)))
            .with_for_update(skip_locked=True))  # SQLite: nothing; BEGIN IMMEDIATE locks
    with engine_mod.writer(store.engine).begin() as conn:
        ids = list(conn.execute(pick).scalars())
        if not ids:
            return []
        rows = conn.execute(
            update(outbox).where(outbox.c.id.in_(ids))
            .values(state="in-flight", claimed_by=worker_id, claimed_until=until,
                    attempts=outbox.c.attempts + 1, updated=now)
            .returning(*outbox.c)).all()
    jobs = [Job(id=r.id, exam_id=r.exam_id, revision=r.revision, payload=r.payload,
                attempts=r.attempts, claimed_by=r.claimed_by, claimed_until=r.claimed_until)
            for r in rows]
    return sorted(jobs, key=lambda j: ids.index(j.id))


def delivered(store: Store, job: Job, *, now: dt.datetime | None = None) -> bool:
    """The EHR accepted the Bundle. True whatever the lease: once accepted, it is
    delivered (a late worker only confirms what a newer claim would also find)."""
    now = now or _now()
    with engine_mod.writer(store.engine).begin() as conn:
        result = conn.execute(
            update(outbox).where(outbox.c.id == job.id, outbox.c.state != "delivered")
            .values(state="delivered", delivered_at=now, last_error=None, claimed_by=None,
                    claimed_until=None, updated=now))
    return bool(result.rowcount)


def failed(store: Store, job: Job, error: str, *, retryable: bool,
           policy: Policy = Policy(), now: dt.datetime | None = None) -> str | None:
    """The attempt failed: back to ``pending`` after a backoff, or ``dead`` when it
    cannot succeed (not ``retryable``) or this was the last attempt. Returns the new
    state; None when this worker's claim is no longer current (the lease ran out and
    another worker took the job), which then changes nothing."""
    now = now or _now()
    dead = not retryable or job.attempts >= policy.max_attempts
    state = "dead" if dead else "pending"
    after = now if dead else now + dt.timedelta(seconds=policy.delay(job.attempts))
    with engine_mod.writer(store.engine).begin() as conn:
        result = conn.execute(
            update(outbox).where(outbox.c.id == job.id, outbox.c.state == "in-flight",
                                 outbox.c.claimed_by == job.claimed_by,
                                 outbox.c.attempts == job.attempts)
            .values(state=state, next_attempt_at=after, last_error=_short(error),
                    claimed_by=None, claimed_until=None, updated=now))
    return state if result.rowcount else None


def status_for(store: Store, exam_id: str) -> Status | None:
    """The delivery of the exam's latest queued revision; None when none was queued."""
    key = _key(exam_id, "exam")
    with store.engine.connect() as conn:
        row = conn.execute(select(outbox).where(outbox.c.exam_id == key)
                           .order_by(outbox.c.revision.desc()).limit(1)).one_or_none()
    if row is None:
        return None
    return Status(revision=row.revision, state=row.state, attempts=row.attempts,
                  next_attempt_at=row.next_attempt_at, last_error=row.last_error,
                  delivered_at=row.delivered_at)


def work(store: Store, *, worker_id: str, batch: int, lease_seconds: float,
         base_url: str, profile: str, timeout: float, policy: Policy = Policy(),
         token: Callable[[Job], str | None] | None = None,
         on_unauthorized: Callable[[Job], None] | None = None,
         capabilities: Capabilities | None = None) -> dict[str, int]:
    """Claim up to ``batch`` due deliveries and deliver each; counts by outcome.

    ``token`` gives the bearer token for a job (None: none is sent); when it raises
    ``smart.SmartError`` the job waits (retryable) with "could not get an EHR token:
    <reason>". An EHR answering 401 leaves the job to be retried, and
    ``on_unauthorized(job)`` is called first (to drop a cached token: the retry asks
    for a fresh one). ``capabilities`` keeps the EHR's CapabilityStatement between
    batches for ``profile="auto"`` (None: read afresh for each call of ``work``)."""
    from .smart import SmartError  # Authlib: only for workers

    if profile == "auto" and capabilities is None:
        capabilities = Capabilities(base_url, timeout=timeout)
    counts = {"claimed": 0, "delivered": 0, "retry": 0, "dead": 0}
    jobs = claim(store, worker_id, batch, lease_seconds, max_attempts=policy.max_attempts)
    counts["claimed"] = len(jobs)
    for job in jobs:
        try:
            bearer = token(job) if token is not None else None
        except SmartError as error:
            result = Result(delivered=False, retryable=True,
                            error=f"could not get an EHR token: {error}")
        else:
            result = ehr.deliver(base_url, job.payload, token=bearer, timeout=timeout,
                                 profile=profile, capabilities=capabilities)
        if result.delivered:
            delivered(store, job)
            counts["delivered"] += 1
            continue
        retryable = result.retryable
        if result.status == 401:  # the token was refused (expired early, revoked)
            retryable = True
            if on_unauthorized is not None:
                on_unauthorized(job)
        state = failed(store, job, result.error or "failed", retryable=retryable,
                       policy=policy)
        if state is not None:
            counts["retry" if state == "pending" else "dead"] += 1
    return counts


def _short(error: str) -> str:
    text = " ".join(str(error).split()) or "unknown error"
    return text if len(text) <= ERROR_LENGTH else text[:ERROR_LENGTH - 1] + "…"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
