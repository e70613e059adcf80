"""The audit trail's storage: append AuditEvents, search them, export them as NDJSON.

One table, ``audit_events`` (``tables``), append-only: migration 0006 installs triggers
that refuse UPDATE and DELETE on SQLite and PostgreSQL, so what was appended stays as it
was. The event is kept as the JSON text that was appended; the columns beside it are
copied out of it (``facts``) for the searches an auditor runs: by patient, by user, by
time.

Writes are audited inside the use case's own transaction (``append(connection, event)``
on the connection that makes the write: both commit or neither does); reads are audited
before the data is served (``write``, its own short transaction), and a read whose audit
cannot be written is refused (``AuditUnavailable``; ``web.audit`` answers 503).
Nothing here logs an event's content: it names patients.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from sqlalchemy import Connection, Engine, and_, exc, func, insert, or_, select

from ..core import audit_events as ae
from ..errors import UnavailableError
from . import engine as engine_mod
from .store import TimeRange
from .tables import audit_events

MAX_COUNT = 10_000


class AuditUnavailable(UnavailableError):
    """The audit record could not be written: what it would have covered must not happen
    (the web edge answers 503)."""


@dataclass(frozen=True)
class Facts:
    """What the audit table copies out of an AuditEvent for searching."""

    id: str
    recorded: dt.datetime
    action: str
    type: str
    subtype: str | None
    outcome: str
    agent: str | None
    address: str | None
    patient_id: str | None
    resource: str | None


def facts(event: Mapping[str, Any]) -> Facts:
    """The searchable facts of ``event`` (an AuditEvent as ``core.audit_events`` builds)."""
    agents = [a for a in event.get("agent") or [] if isinstance(a, Mapping)]
    user = next((a["who"]["identifier"]["value"] for a in agents
                 if (a.get("who") or {}).get("identifier", {}).get("system")
                 in (ae.USER_SYSTEM, ae.CLIENT_SYSTEM) and a.get("requestor")),
                None)
    address = next((a["network"]["address"] for a in agents
                    if a.get("requestor") and "network" in a), None) \
        or next((a["network"]["address"] for a in agents if "network" in a), None)
    patient = resource = None
    for entity in event.get("entity") or []:
        role = ((entity.get("role") or {}).get("code"))
        reference = (entity.get("what") or {}).get("reference")
        if role == "1" and isinstance(reference, str) and reference.startswith("Patient/"):
            patient = patient or reference.removeprefix("Patient/")
        elif role == "4" and isinstance(reference, str):
            resource = resource or reference
    subtypes = event.get("subtype") or [{}]
    return Facts(id=event["id"], recorded=dt.datetime.fromisoformat(
                     event["recorded"].replace("Z", "+00:00")),
                 action=event["action"], type=event["type"]["code"],
                 subtype=subtypes[0].get("code"), outcome=event["outcome"], agent=user,
                 address=address, patient_id=patient, resource=resource)


def append(connection: Connection, event: Mapping[str, Any]) -> None:
    """Append ``event`` on ``connection``, inside the caller's transaction (a use case's
    write and its audit commit together or not at all)."""
    row = facts(event)
    connection.execute(insert(audit_events).values(
        **row.__dict__, event=json.dumps(event, ensure_ascii=False, separators=(",", ":"))))


def write(engine: Engine, *events: Mapping[str, Any]) -> None:
    """Append ``events`` in their own transaction (all or none), committed before this
    returns; any database failure is an AuditUnavailable (the caller must then not go
    on)."""
    try:
        with engine_mod.writer(engine).begin() as conn:
            for event in events:
                append(conn, event)
    except exc.SQLAlchemyError as error:  # the class only: the text may quote the event
        raise AuditUnavailable(f"the audit record could not be written "
                               f"({type(error).__name__})", original_error=error) from error


def search(engine: Engine, *, patients: Collection[str] | None = None,
           agents: Collection[str] | None = None, recorded: Sequence[Sequence[TimeRange]] = (),
           count: int = 50, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """(how many match, one page of them, newest first): events about one of
    ``patients``, requested by one of ``agents`` (usernames), recorded in some range of
    every group in ``recorded`` (repeated parameters AND, commas OR, as FHIR search).
    None filters nothing; an empty collection matches nothing."""
    conditions = []
    if patients is not None:
        conditions.append(audit_events.c.patient_id.in_(sorted(patients)))
    if agents is not None:
        conditions.append(audit_events.c.agent.in_(sorted(agents)))
    moment = audit_events.c.recorded
    for ranges in recorded:
        conditions.append(or_(False, *(and_(
            moment >= start if start is not None else True,
            moment < end if end is not None else True) for start, end in ranges)))
    where = and_(True, *conditions)
    page = (select(audit_events.c.event).where(where)
            .order_by(moment.desc(), audit_events.c.id)
            .limit(min(max(0, int(count)), MAX_COUNT)).offset(max(0, int(offset))))
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(audit_events)
                             .where(where)).scalar_one()
        rows = conn.execute(page).scalars().all() if count > 0 else []
    return total, [json.loads(text) for text in rows]


def events_since(engine: Engine, since: dt.datetime | None) -> Iterator[str]:
    """The events recorded at or after ``since`` (all with None), oldest first, each as
    the JSON text appended; streamed, so a long trail is never held in memory."""
    query = select(audit_events.c.event).order_by(audit_events.c.recorded, audit_events.c.id)
    if since is not None:
        query = query.where(audit_events.c.recorded >= since)
    with engine.connect() as conn:
        for text in conn.execution_options(yield_per=500).execute(query).scalars():
            yield text


def export(engine: Engine, since: dt.datetime | None, out: TextIO) -> int:
    """Write the events since ``since`` to ``out`` as NDJSON (one AuditEvent a line);
    returns how many."""
    written = 0
    for text in events_since(engine, since):
        out.write(text + "\n")
        written += 1
    return written


def read(engine: Engine, event_id: str) -> dict[str, Any] | None:
    """The AuditEvent ``event_id``, or None (also for an id that is not a uuid)."""
    try:
        key = str(uuid.UUID(event_id))
    except ValueError:
        return None
    with engine.connect() as conn:
        text = conn.execute(select(audit_events.c.event)
                            .where(audit_events.c.id == key)).scalar_one_or_none()
    return None if text is None else json.loads(text)
