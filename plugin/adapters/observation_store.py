"""The signed revisions' Observations as stored (tables ``observations`` and
``observation_codes``): written once, at signature, in the signature's own transaction
(``Store.sign(observations=...)``) or by the backfill of revisions signed before they
were kept; read by the FHIR API's Observation search and read, which never derive them
again.

The current Observations are those of each exam's latest signed revision, marked
``current``: an amendment's signature adds its rows and unmarks the earlier revision's in
the same transaction; those stay stored (vread, and the 410 of an id the amendment
dropped). A flag rather than a join to ``exams`` on every search: counting a patient's
Observations then reads one index (the join cost ten times more on SQLite, whose exam
rows hold the answers before the revision count). An amendment in progress changes
nothing here.

Searches are SQL over the copied-out columns (patient, date, codes), paged in the
database, so a patient's Observations come back in milliseconds however many exams and
revisions they have.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (Connection, Engine, and_, exists, false, func, insert, or_, select,
                        tuple_, update)

from ..errors import InputError, NotFoundError
from .tables import exams, observation_codes, observations, revisions

#: A time range [from, to), either end open (the same shape as ``store.TimeRange``).
Range = tuple[dt.datetime | None, dt.datetime | None]
#: A code token as (system, code): None = any; system "" = a coding without a system.
Token = tuple[str | None, str | None]
#: The orders a search can ask for: "date" oldest first, "-date" newest first (default).
SORTS = ("date", "-date")


@dataclass(frozen=True)
class ObservationRecord:
    """One Observation of one signed revision, ``resource`` exactly as served (our id,
    meta, references that resolve on this server); ``date`` its effective time (aware
    UTC) and ``codes`` its codings as (system or "", code)."""

    id: str
    exam_id: str
    revision: int
    patient_id: str
    date: dt.datetime
    resource: Mapping[str, Any]
    codes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Versions:
    """What is stored of one Observation id: the exam's patient and current revision,
    and the revisions that recorded it (oldest first)."""

    patient_id: str
    current_revision: int
    records: tuple[ObservationRecord, ...]

    @property
    def current(self) -> ObservationRecord | None:
        return next((r for r in self.records if r.revision == self.current_revision), None)


def insert_revision(conn: Connection, exam_id: str, revision: int, patient_id: str,
                    records: Sequence[ObservationRecord], *, latest: int) -> None:
    """Store a revision's Observations on ``conn`` (the caller's transaction), current
    when ``revision`` is the exam's ``latest`` (then no earlier revision's are). Each
    must belong to that exam, revision and patient: anything else is refused."""
    current = revision == latest
    if current:
        conn.execute(update(observations)
                     .where(observations.c.exam_id == exam_id, observations.c.current,
                            observations.c.revision != revision)
                     .values(current=False))
    rows, codes = [], []
    for position, record in enumerate(records):
        if (record.exam_id, record.revision, record.patient_id) != \
                (exam_id, revision, patient_id):
            raise InputError(f"Observation {record.id} does not belong to revision "
                             f"{revision} of exam {exam_id}", status=422)
        if record.date.utcoffset() is None:
            raise InputError("an Observation's date needs a timezone", status=422)
        text = json.dumps(record.resource, allow_nan=False, ensure_ascii=False,
                          separators=(",", ":"))
        if "\\u0000" in text:
            raise InputError(f"Observation {record.id} contains a NUL character", status=422)
        rows.append({"exam_id": exam_id, "revision": revision, "id": record.id,
                     "position": position, "patient_id": patient_id,
                     "date": record.date, "current": current, "resource": text})
        codes += [{"exam_id": exam_id, "revision": revision, "observation_id": record.id,
                   "system": system, "code": code} for system, code in set(record.codes)]
    if rows:
        conn.execute(insert(observations), rows)
    if codes:
        conn.execute(insert(observation_codes), codes)


def search(engine: Engine, *, patient_ids: Collection[str],
           codes: Sequence[Sequence[Token]] = (), dates: Sequence[Sequence[Range]] = (),
           sort: str = "-date", limit: int = 50,
           offset: int = 0) -> tuple[int, list[ObservationRecord]]:
    """(total, page) of the patients' current Observations. ``codes``: each list is a
    parameter (lists AND), its tokens OR; ``dates`` likewise with ranges. Ordered by date
    (``sort``), then exam, then form order."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {SORTS}")
    conditions: list[Any] = [observations.c.patient_id.in_(list(patient_ids))
                             if patient_ids else false(), observations.c.current]
    for tokens in codes:
        conditions.append(exists().where(
            observation_codes.c.exam_id == observations.c.exam_id,
            observation_codes.c.revision == observations.c.revision,
            observation_codes.c.observation_id == observations.c.id,
            or_(false(), *(_token(system, code) for system, code in tokens))))
    for ranges in dates:
        conditions.append(or_(false(), *(and_(
            observations.c.date >= start if start is not None else True,
            observations.c.date < end if end is not None else True) for start, end in ranges)))
    where = and_(True, *conditions)
    date = observations.c.date.asc() if sort == "date" else observations.c.date.desc()
    page = (select(observations).where(where)
            .order_by(date, observations.c.exam_id, observations.c.position)
            .limit(min(max(0, int(limit)), 10_000)).offset(max(0, int(offset))))
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(observations)
                             .where(where)).scalar_one()
        rows = conn.execute(page).all() if limit > 0 else []
    return total, [_record(row) for row in rows]


#: What the progress charts read of an Observation (``of_codes``): its code, value, date
#: and body site (the laterality), nothing else.
CHART_FIELDS = ("code", "valueQuantity", "valueInteger", "valueDecimal",
                "effectiveDateTime", "bodySite")


def of_codes(engine: Engine, patient_id: str,
             codes: Collection[tuple[str, str]]) -> list[tuple[str, Mapping[str, Any]]]:
    """(exam id, Observation cut to ``CHART_FIELDS``) of the patient's current
    Observations with any of ``codes`` (system, code), oldest first, then by exam and
    form order: one query, all of them (no page, no count). The progress charts read
    the numeric findings this way: the coded and boolean ones, most of an exam, stay
    unread, and of each row only those fields leave the database (each stored resource
    is parsed once there by SQLite's ``json_extract`` with several paths; PostgreSQL
    sends the text, parsed here: its jsonb cast cost more than it saved)."""
    if not codes:
        return []
    # driven by the codes, not by the patient's Observations: the patient's exams and
    # their current revision's codings (an index-only read, materialised so neither
    # planner starts from the Observations), then only the matching rows; a scan of the
    # patient's Observations would read every stored resource
    matched = (select(observation_codes.c.exam_id, observation_codes.c.revision,
                      observation_codes.c.observation_id)
               .select_from(exams.join(observation_codes, and_(
                   observation_codes.c.exam_id == exams.c.id,
                   observation_codes.c.revision == exams.c.revisions)))
               .where(exams.c.patient_id == patient_id,
                      tuple_(observation_codes.c.system, observation_codes.c.code)
                      .in_(sorted(codes)))
               .distinct().cte("matched").prefix_with("MATERIALIZED"))
    found_from = matched.join(observations, and_(
        observations.c.exam_id == matched.c.exam_id,
        observations.c.revision == matched.c.revision,
        observations.c.id == matched.c.observation_id))
    where = observations.c.current
    order = (observations.c.date, observations.c.exam_id, observations.c.position)
    if engine.dialect.name == "postgresql":
        # the text as stored, parsed here once: a jsonb cast and a built array cost
        # PostgreSQL more than the parse they save
        statement = (select(observations.c.id, observations.c.exam_id,
                            observations.c.resource)
                     .select_from(found_from).where(where).order_by(*order))
    else:
        statement = (select(observations.c.id, observations.c.exam_id, func.json_extract(
            observations.c.resource, *(f"$.{name}" for name in CHART_FIELDS)))
            .select_from(found_from).where(where).order_by(*order))
    found = []
    with engine.connect() as conn:
        for _, exam_id, picked in conn.execute(statement):
            values = json.loads(picked)
            if isinstance(values, dict):  # the whole resource (PostgreSQL)
                values = [values.get(name) for name in CHART_FIELDS]
            found.append((exam_id, {k: v for k, v in zip(CHART_FIELDS, values)
                                    if v is not None}))
    return found


def versions(engine: Engine, exam_id: str, observation_id: str) -> Versions:
    """Every stored revision of one Observation id; NotFoundError for an unknown exam."""
    with engine.connect() as conn:
        exam = conn.execute(select(exams.c.patient_id, exams.c.revisions)
                            .where(exams.c.id == exam_id)).one_or_none()
        if exam is None:
            raise NotFoundError(f"no exam with id {exam_id}")
        rows = conn.execute(select(observations).where(
            observations.c.exam_id == exam_id, observations.c.id == observation_id)
            .order_by(observations.c.revision)).all()
    return Versions(exam.patient_id, exam.revisions, tuple(_record(row) for row in rows))


def unmaterialised(engine: Engine) -> list[tuple[str, int]]:
    """(exam id, revision number) of every signed revision without stored Observations
    (signed before they were kept), oldest first."""
    stored = exists().where(observations.c.exam_id == revisions.c.exam_id,
                            observations.c.revision == revisions.c.number)
    with engine.connect() as conn:
        rows = conn.execute(select(revisions.c.exam_id, revisions.c.number)
                            .where(~stored)
                            .order_by(revisions.c.signed_at, revisions.c.exam_id,
                                      revisions.c.number)).all()
    return [(row.exam_id, row.number) for row in rows]


def _token(system: str | None, code: str | None) -> Any:
    """SQL matching one coding against a token (``None`` = any)."""
    return and_(True,
                observation_codes.c.system == system if system is not None else True,
                observation_codes.c.code == code if code is not None else True)


def _record(row: Any) -> ObservationRecord:
    resource = json.loads(row.resource)
    return ObservationRecord(id=row.id, exam_id=row.exam_id, revision=row.revision,
                             patient_id=row.patient_id, date=row.date, resource=resource)
