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
   provider may well succeed next time. A record whose EHR patient must be confirmed by
   a person is ``held`` (``ehr_patient``) until one does (``choose_patient``).

Every outcome keeps what reached the EHR (``sent``: each entry's EHR id) and what was
deliberately left out (``unsent``, with the reason), for the record page; the next
attempt (a retry, or "Send again": ``requeue``) sends only what is missing.

``last_error`` holds an HTTP status and OperationOutcome texts, never the payload (it is
PHI). Nothing here logs a payload.

Each attempt's outcome (delivered, refused or failed, held for a person) leaves a DCM
110106 Export AuditEvent (``core.audit_events.delivery``: this service the source, the
EHR the destination, the exam's patient and ``QuestionnaireResponse/<exam>``), appended
in the transaction that records the outcome; the worker acts for no signed-in user.
"""
from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_, select, update

from ..core import audit_events, outcome as outcomes
from . import ehr, ehr_patient, ehr_servers, frozen
from . import engine as engine_mod
from .ehr_capability import Capabilities
from .ehr_http import Result
from .store import Audit, Store, _audit, _key
from .tables import exams, outbox, patients

__all__ = ["Job", "Policy", "Status", "choose_patient", "claim", "delivered", "failed",
           "held", "listing", "requeue", "status_for", "work"]

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
    #: What earlier attempts got into the EHR (fullUrl -> "<Type>/<id>").
    sent: Mapping[str, str] = field(default_factory=dict)
    #: The EHR Patient a person chose for a held delivery ("Patient/<id>").
    ehr_patient: str | None = None


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
    exam_id: str = ""
    #: What reached the EHR: fullUrl -> "<Type>/<id>"; and the resource types the
    #: payload holds, each fullUrl's (to tell what did not).
    sent: Mapping[str, str] = field(default_factory=dict)
    unsent: tuple[tuple[str, str], ...] = ()
    types: Mapping[str, str] = field(default_factory=dict)
    candidates: tuple[Mapping[str, Any], ...] = ()
    ehr_patient: str | None = None

    def reached(self) -> dict[str, list[str]]:
        """The EHR's ids of what reached it, by resource type."""
        by_type: dict[str, list[str]] = {}
        for url, ehr_id in self.sent.items():
            by_type.setdefault(self.types.get(url, ehr_id.partition("/")[0]), []).append(ehr_id)
        return by_type

    def missing(self) -> dict[str, int]:
        """How many entries of each type are not in the EHR (not sent yet, or left out)."""
        counts: dict[str, int] = {}
        for url, kind in self.types.items():
            if url not in self.sent:
                counts[kind] = counts.get(kind, 0) + 1
        return counts


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
    # a revision whose documents are still being rendered waits: the EHR gets the
    # stored bytes (``frozen.finish`` fills the attachments), never a placeholder
    due = and_(or_(and_(outbox.c.state == "pending", outbox.c.next_attempt_at <= now),
                   and_(outbox.c.state == "in-flight", outbox.c.claimed_until < now)),
               ~frozen.pending_for())
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
                attempts=r.attempts, claimed_by=r.claimed_by, claimed_until=r.claimed_until,
                sent=dict(r.sent or {}), ehr_patient=r.ehr_patient)
            for r in rows]
    return sorted(jobs, key=lambda j: ids.index(j.id))


def delivered(store: Store, job: Job, *, now: dt.datetime | None = None,
              result: Result | None = None, audit: Audit | None = None) -> bool:
    """The EHR accepted the Bundle. True whatever the lease: once accepted, it is
    delivered (a late worker only confirms what a newer claim would also find)."""
    now = now or _now()
    with engine_mod.writer(store.engine).begin() as conn:
        result_ = conn.execute(
            update(outbox).where(outbox.c.id == job.id, outbox.c.state != "delivered")
            .values(state="delivered", delivered_at=now, last_error=None, claimed_by=None,
                    claimed_until=None, updated=now, candidates=None,
                    **_receipts(job, result)))
        if result_.rowcount:
            _audit(conn, audit, job)
    return bool(result_.rowcount)


def failed(store: Store, job: Job, error: str, *, retryable: bool,
           policy: Policy = Policy(), now: dt.datetime | None = None,
           result: Result | None = None, audit: Audit | None = None) -> str | None:
    """The attempt failed: back to ``pending`` after a backoff, or ``dead`` when it
    cannot succeed (not ``retryable``) or this was the last attempt. Returns the new
    state; None when this worker's claim is no longer current (the lease ran out and
    another worker took the job), which then changes nothing."""
    now = now or _now()
    dead = not retryable or job.attempts >= policy.max_attempts
    state = "dead" if dead else "pending"
    after = now if dead else now + dt.timedelta(seconds=policy.delay(job.attempts))
    with engine_mod.writer(store.engine).begin() as conn:
        changed = conn.execute(
            update(outbox).where(outbox.c.id == job.id, outbox.c.state == "in-flight",
                                 outbox.c.claimed_by == job.claimed_by,
                                 outbox.c.attempts == job.attempts)
            .values(state=state, next_attempt_at=after, last_error=_short(error),
                    claimed_by=None, claimed_until=None, updated=now,
                    **_receipts(job, result)))
        if changed.rowcount:
            _audit(conn, audit, job)
    return state if changed.rowcount else None


def held(store: Store, job: Job, result: Result, *, now: dt.datetime | None = None,
         audit: Audit | None = None) -> bool:
    """The delivery waits for a person to confirm the EHR's patient (``result.hold``
    says why; its candidates are kept for them to choose from). Not retried until
    ``choose_patient``; the attempt does not count against ``max_attempts``."""
    now = now or _now()
    with engine_mod.writer(store.engine).begin() as conn:
        changed = conn.execute(
            update(outbox).where(outbox.c.id == job.id, outbox.c.state == "in-flight",
                                 outbox.c.claimed_by == job.claimed_by,
                                 outbox.c.attempts == job.attempts)
            .values(state="held", last_error=_short(result.hold or "held"),
                    candidates=[dict(c) for c in result.candidates] or None,
                    attempts=outbox.c.attempts - 1, claimed_by=None, claimed_until=None,
                    updated=now, **_receipts(job, result)))
        if changed.rowcount:
            _audit(conn, audit, job)
    return bool(changed.rowcount)


def _receipts(job: Job, result: Result | None) -> dict[str, Any]:
    """The ``sent`` and ``unsent`` columns after an attempt: what the EHR holds grows."""
    if result is None:
        return {}
    sent = {**job.sent, **result.sent}
    return {"sent": sent or None,
            "unsent": [list(u) for u in dict.fromkeys(result.unsent)] or None}


def requeue(store: Store, exam_id: str, *, now: dt.datetime | None = None,
            audit: Audit | None = None) -> Status | None:
    """"Send again": the exam's latest delivery, if it could not be sent (``dead``) or
    waits for a person (``held``), is due now with a fresh count of attempts; what
    already reached the EHR is not sent again. None: nothing to send again. ``audit``:
    as the store's writes, appended in this transaction when a delivery was requeued."""
    now = now or _now()
    latest = _latest(store, exam_id)
    if latest is None or latest.state not in ("dead", "held"):
        return None
    with engine_mod.writer(store.engine).begin() as conn:
        changed = conn.execute(update(outbox).where(outbox.c.id == latest.id,
                                                    outbox.c.state.in_(("dead", "held")))
                               .values(state="pending", attempts=0, next_attempt_at=now,
                                       updated=now))
        if not changed.rowcount:
            return None
        _audit(conn, audit, None)
    return status_for(store, exam_id)


def choose_patient(store: Store, exam_id: str, reference: str, *,
                   now: dt.datetime | None = None,
                   audit: Audit | None = None) -> Status | None:
    """A person named the EHR's patient (``Patient/<id>``) for the exam's held delivery:
    it is due now and goes to that patient. None: no delivery is held."""
    now = now or _now()
    latest = _latest(store, exam_id)
    if latest is None or latest.state != "held":
        return None
    with engine_mod.writer(store.engine).begin() as conn:
        changed = conn.execute(
            update(outbox).where(outbox.c.id == latest.id, outbox.c.state == "held")
            .values(state="pending", ehr_patient=reference, attempts=0,
                    next_attempt_at=now, updated=now))
        if not changed.rowcount:
            return None
        _audit(conn, audit, None)
    return status_for(store, exam_id)


def listing(store: Store, *, states: tuple[str, ...] | None = None,
            limit: int = 200) -> list[Status]:
    """The deliveries, newest first (of ``states`` only, when given)."""
    statement = select(outbox).order_by(outbox.c.created.desc(), outbox.c.id).limit(limit)
    if states:
        statement = statement.where(outbox.c.state.in_(states))
    with store.engine.connect() as conn:
        rows = conn.execute(statement).all()
    return [_status(row) for row in rows]


def status_for(store: Store, exam_id: str) -> Status | None:
    """The delivery of the exam's latest queued revision; None when none was queued."""
    row = _latest(store, exam_id)
    return None if row is None else _status(row)


def _latest(store: Store, exam_id: str) -> Any:
    key = _key(exam_id, "exam")
    with store.engine.connect() as conn:
        return conn.execute(select(outbox).where(outbox.c.exam_id == key)
                            .order_by(outbox.c.revision.desc()).limit(1)).one_or_none()


def _status(row: Any) -> Status:
    types = {e["fullUrl"]: e["resource"]["resourceType"]
             for e in (row.payload or {}).get("entry") or []}
    return Status(revision=row.revision, state=row.state, attempts=row.attempts,
                  next_attempt_at=row.next_attempt_at, last_error=row.last_error,
                  delivered_at=row.delivered_at, exam_id=row.exam_id,
                  sent=dict(row.sent or {}),
                  unsent=tuple(tuple(u) for u in row.unsent or ()), types=types,
                  candidates=tuple(row.candidates or ()), ehr_patient=row.ehr_patient)


def work(store: Store, *, worker_id: str, batch: int, lease_seconds: float,
         base_url: str, profile: str, timeout: float, policy: Policy = Policy(),
         token: Callable[[Job], str | None] | None = None,
         on_unauthorized: Callable[[Job], None] | None = None,
         capabilities: Capabilities | None = None, max_entries: int | None = None,
         identifier_system: str = "") -> dict[str, int]:
    """Claim up to ``batch`` due deliveries and deliver each; counts by outcome.

    ``token`` gives the bearer token for a job (None: none is sent); when it raises
    ``smart.SmartError`` the job waits (retryable) with "could not get an EHR token:
    <reason>". An EHR answering 401 leaves the job to be retried, and
    ``on_unauthorized(job)`` is called first (to drop a cached token: the retry asks
    for a fresh one). ``capabilities`` keeps the EHR's CapabilityStatement between
    batches for ``profile="auto"`` (None: read afresh for each call of ``work``).
    ``max_entries``: ``EHR_TRANSACTION_MAX_ENTRIES`` (None: what the EHR's refusals
    taught, ``ehr_servers``); ``identifier_system``: ``PATIENT_IDENTIFIER_SYSTEM``, how a
    patient typed on the tablet is looked up in the EHR (``ehr_patient``)."""
    from .smart import SmartError  # Authlib: only for workers

    if profile == "auto" and capabilities is None:
        capabilities = Capabilities(base_url, timeout=timeout)
    counts = {"claimed": 0, "delivered": 0, "retry": 0, "dead": 0, "held": 0}
    jobs = claim(store, worker_id, batch, lease_seconds, max_attempts=policy.max_attempts)
    counts["claimed"] = len(jobs)
    memory = ehr_servers.recall(store, base_url) if jobs else None
    for job in jobs:
        try:
            bearer = token(job) if token is not None else None
        except SmartError as error:
            result = Result(delivered=False, retryable=True,
                            error=f"could not get an EHR token: {error}")
        else:
            result = ehr.deliver(base_url, job.payload, token=bearer, timeout=timeout,
                                 profile=profile, capabilities=capabilities, sent=job.sent,
                                 limit=max_entries, memory=memory,
                                 patient=_patient_facts(store, job, identifier_system))
        trail = _delivery_audit(store, job, base_url, result)
        if result.delivered:
            delivered(store, job, result=result, audit=trail)
            counts["delivered"] += 1
            continue
        if result.hold:
            counts["held"] += held(store, job, result, audit=trail)
            continue
        retryable = result.retryable
        if result.status == 401:  # the token was refused (expired early, revoked)
            retryable = True
            if on_unauthorized is not None:
                on_unauthorized(job)
        state = failed(store, job, result.error or "failed", retryable=retryable,
                       policy=policy, result=result, audit=trail)
        if state is not None:
            counts["retry" if state == "pending" else "dead"] += 1
    return counts


def _delivery_audit(store: Store, job: Job, base_url: str, result: Result) -> Audit:
    """The store's ``audit`` for an attempt's outcome: its Export event. A refusal is a
    serious failure (8) answered with its words; a retryable failure or a hold a minor
    one (4)."""
    with store.engine.connect() as conn:
        patient_id = conn.execute(select(exams.c.patient_id)
                                  .where(exams.c.id == job.exam_id)).scalar()
    failure = None
    if not result.delivered:
        words = result.hold or result.error or "failed"
        minor = result.retryable or result.hold is not None
        failure = audit_events.Failure(
            audit_events.MINOR_FAILURE if minor else audit_events.SERIOUS_FAILURE,
            outcomes.simple("information" if result.hold else "error",
                            "informational" if result.hold else "exception", _short(words)))

    def events(_: Any) -> list[Mapping[str, Any]]:
        return [audit_events.delivery(
            ehr_base=base_url, resource=f"QuestionnaireResponse/{job.exam_id}",
            patient_id=patient_id, recorded=_now(), failure=failure)]
    return events


def _patient_facts(store: Store, job: Job, system: str) -> ehr_patient.Facts | None:
    """What the local record says of the job's patient, for a Bundle that names its
    patient without a literal reference (a patient typed on the tablet); else None."""
    if not ehr_patient.needed(job.payload):
        return None
    with store.engine.connect() as conn:
        resource = conn.execute(
            select(patients.c.resource).join(exams, exams.c.patient_id == patients.c.id)
            .where(exams.c.id == job.exam_id)).scalar()
    resource = resource if isinstance(resource, Mapping) else {}
    identifier = next(((system, i["value"]) for i in resource.get("identifier") or []
                       if isinstance(i, Mapping) and system and i.get("system") == system
                       and isinstance(i.get("value"), str) and i["value"]), None)
    birth_date = resource.get("birthDate")
    return ehr_patient.Facts(identifier, birth_date if isinstance(birth_date, str) else None,
                             job.ehr_patient)


def _short(error: str) -> str:
    text = " ".join(str(error).split()) or "unknown error"
    return text if len(text) <= ERROR_LENGTH else text[:ERROR_LENGTH - 1] + "…"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
