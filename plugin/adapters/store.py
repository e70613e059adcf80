"""The exam store: patients, exams with one draft each, and signed revisions.

SQLAlchemy 2 Core over the tables in ``tables.py``; an SQLite file by default, PostgreSQL
when several app processes share one database. Every write is one short transaction
whose first statement takes the row (a conditional ``UPDATE ... WHERE version = :expected``)
so two tablets saving the same exam can never both win: the loser gets a ConflictError
naming the version to reload. Signed answers are locked; changing them means an
amendment with a reason, and every signature is kept as a revision.

Records come back frozen and detached (fresh plain dicts from each read), so callers can
serialise them directly and nothing they do reaches the database. Nothing here logs
answers, names or resources.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (Connection, Engine, Row, and_, case, exc, false, func, insert, or_,
                        select, type_coerce, update)

from ..errors import ConflictError, InputError, LockedError, NotFoundError, PluginError
from . import engine as engine_mod, migrations, observation_store
from .engine import StoreError
from .observation_store import ObservationRecord
from .tables import (EDITABLE, STATES, UTCDateTime, exams, frozen_inputs, outbox, patients,
                     prom_responses, revisions)

__all__ = ["CURRENT_STATUSES", "STATES", "Audit", "Current", "ExamRecord",
           "ObservationRecord", "PatientRecord", "Revision", "Store", "StoreError",
           "TimeRange", "database_url", "from_app", "init_app"]

log = logging.getLogger(__name__)
EXTENSION_KEY = "store"


@dataclass(frozen=True)
class PatientRecord:
    """A stored FHIR Patient; ``id`` (a uuid4) is also ``resource["id"]``."""

    id: str
    resource: Mapping[str, Any]
    created: dt.datetime
    #: The EHR's FHIR base and Patient id, for a patient brought in by a SMART launch.
    ehr_base: str | None = None
    ehr_id: str | None = None


@dataclass(frozen=True)
class Revision:
    """One signature, kept unchanged for good: number 1 is ``completed``, later ones
    ``amended`` with the amendment's ``reason``; ``signed_at`` is aware UTC."""

    exam_id: str
    number: int
    status: str
    answers: Mapping[str, Any]
    response: Mapping[str, Any]
    provenance: Mapping[str, Any]
    signed_by: str
    signed_at: dt.datetime
    reason: str | None
    #: The clinician's impression and plan as signed (None: none recorded).
    impression: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ExamRecord:
    """An exam as it stands. ``version`` starts at 1 and grows with every write: it is
    the ETag every write must quote. ``answers`` are the working answers (plain format),
    ``draft`` the in-progress QuestionnaireResponse (None while signed), ``amend_reason``
    set while amending, ``revisions`` the number of signatures so far."""

    id: str
    patient_id: str
    questionnaire: str
    state: str
    version: int
    answers: Mapping[str, Any]
    draft: Mapping[str, Any] | None
    amend_reason: str | None
    revisions: int
    created: dt.datetime
    updated: dt.datetime
    #: The EHR encounter (a FHIR Reference) and the SMART launch the exam started from.
    encounter: Mapping[str, Any] | None = None
    launch_id: str | None = None
    #: The working impression and plan (``decision/impression``'s JSON), None: none yet.
    impression: Mapping[str, Any] | None = None
    #: The episode: the id of its initial exam (an initial exam's is its own id).
    episode_id: str | None = None


@dataclass(frozen=True)
class Current:
    """An exam as it is shown outside the tablet: its latest signed revision, or, for an
    exam never signed, its draft (an amendment in progress is not shown until signed)."""

    exam: ExamRecord
    revision: Revision | None

    @property
    def status(self) -> str:
        """The current QuestionnaireResponse status: in-progress, completed or amended."""
        return "in-progress" if self.revision is None else self.revision.status

    @property
    def changed(self) -> dt.datetime:
        """When the current version was written: the signature, else the last save."""
        return self.exam.updated if self.revision is None else self.revision.signed_at


#: What a write's audit is: given the record as written, the AuditEvents that record the
#: write (``core.audit_events``). They are appended on the write's own connection, inside
#: its transaction: both commit or neither does (``_audit``).
Audit = Callable[[Any], Sequence[Mapping[str, Any]]]

#: A time range [from, to), either end open; ``search_current`` takes lists of them.
TimeRange = tuple[dt.datetime | None, dt.datetime | None]
#: The statuses ``search_current`` filters on (those of ``Current.status``).
CURRENT_STATUSES = ("in-progress", "completed", "amended")


#: How many times ``Store.upgrade`` asks again for SQLite's lock when refused at once.
UPGRADE_ATTEMPTS = 5


class Store:
    """All reads and writes of exams; one per app (process), thread-safe."""

    def __init__(self, url: str) -> None:
        self._engine = engine_mod.create(url)
        self._writer = engine_mod.writer(self._engine)
        # JSONB keeps keys sorted its own way; FHIR readers expect resourceType first.
        self._reorder = self._engine.dialect.name == "postgresql"

    @property
    def engine(self) -> Engine:
        return self._engine

    def upgrade(self) -> None:
        """Migrate to the newest schema. Safe when several processes start at once: the
        first takes the lock and migrates, the others wait and then find nothing to do.

        On SQLite, one of three processes starting together on a brand-new database was
        once refused with "database is locked" on a loaded machine, although a migration
        takes ~0.1 s and the busy timeout is 15 s: SQLite answers some lock conflicts at
        once, without its busy handler (which one it was could not be reproduced). So a
        lock refusal is tried again a few times, with a growing pause: the migration runs
        in one transaction, and trying again is harmless."""
        from alembic.util import CommandError

        try:
            for attempt in range(UPGRADE_ATTEMPTS):
                try:
                    with self._writer.begin() as conn:  # SQLite: BEGIN IMMEDIATE, the lock
                        migrations.upgrade(conn)
                    break
                except exc.OperationalError as error:
                    if (self._engine.dialect.name != "sqlite" or "locked" not in str(error)
                            or attempt == UPGRADE_ATTEMPTS - 1):
                        raise
                    self._engine.dispose()
                    time.sleep(0.2 * 2 ** attempt)
        except (exc.SQLAlchemyError, CommandError) as error:
            raise StoreError(f"cannot upgrade the database: {engine_mod.first_line(error)}",
                             original_error=error) from error
        finally:
            # no pooled connection survives into forked workers (gunicorn)
            self._engine.dispose()
        log.info("database schema is at the newest revision")

    def dispose(self) -> None:
        self._engine.dispose()

    # -- patients ---------------------------------------------------------------------

    def add_patient(self, resource: Mapping[str, Any], *,
                    audit: Audit | None = None) -> PatientRecord:
        """Store a FHIR Patient under a new id (also written into the resource).

        ``audit`` (every write method takes one): the AuditEvents of this write, made
        from the record written and appended in the same transaction; if they cannot be
        appended nothing is written (``audit.AuditUnavailable``)."""
        if not isinstance(resource, Mapping) or resource.get("resourceType") != "Patient":
            raise InputError("a Patient resource is required", status=422)
        patient_id = str(uuid.uuid4())
        with self._writer.begin() as conn:
            row = conn.execute(insert(patients).values(
                id=patient_id, created=_now(), **_patient_values(patient_id, resource))
                .returning(*patients.c)).one()
            record = self._patient(row)
            _audit(conn, audit, record)
        return record

    def link_patient(self, ehr_base: str, ehr_id: str, resource: Mapping[str, Any], *,
                     audit: Callable[[PatientRecord, bool], Sequence[Mapping[str, Any]]]
                     | None = None) -> PatientRecord:
        """The local patient for the EHR's ``Patient/<ehr_id>``, created on the first
        launch and refreshed from ``resource`` (the EHR's copy) on every later one.

        Concurrent first launches for one patient race on the unique (ehr_base, ehr_id)
        index: the loser finds the winner's row and refreshes it. ``audit`` gets the
        record and whether it was created (else refreshed)."""
        if not isinstance(resource, Mapping) or resource.get("resourceType") != "Patient":
            raise InputError("a Patient resource is required", status=422)
        base, ehr = _text(ehr_base, "ehr_base"), _text(ehr_id, "ehr_id")
        for _ in range(2):
            with self._writer.begin() as conn:
                existing = conn.execute(select(patients.c.id).where(
                    patients.c.ehr_base == base, patients.c.ehr_id == ehr)).scalar()
                patient_id = existing or str(uuid.uuid4())
                values = _patient_values(patient_id, resource)
                if existing:
                    row = conn.execute(update(patients).where(patients.c.id == existing)
                                       .values(**values).returning(*patients.c)).one()
                    record = self._patient(row)
                    _audit(conn, audit and (lambda r: audit(r, False)), record)
                    return record
                try:
                    with conn.begin_nested():
                        row = conn.execute(insert(patients).values(
                            id=patient_id, created=_now(), ehr_base=base, ehr_id=ehr,
                            **values).returning(*patients.c)).one()
                except exc.IntegrityError:
                    continue  # another launch created it first: refresh that one
                record = self._patient(row)
                _audit(conn, audit and (lambda r: audit(r, True)), record)
                return record
        raise ConflictError("the patient was being linked concurrently; try again")

    def patient(self, patient_id: str) -> PatientRecord:
        key = _key(patient_id, "patient")
        with self._engine.connect() as conn:
            row = _one(conn, select(patients).where(patients.c.id == key),
                       f"no patient with id {key}")
        return self._patient(row)

    def patients(self, search: str | None = None, limit: int = 200) -> list[PatientRecord]:
        """Patients whose family name, given names or identifier contain ``search``
        (any case), or born on it (``1986-03-14``, ``14/03/1986``, ``1986-03``, ``1986``),
        ordered by family then given name."""
        stmt = select(patients).order_by(patients.c.family.asc().nulls_last(),
                                         patients.c.given.asc().nulls_last(), patients.c.id)
        term = (search or "").strip().casefold()
        if term:
            matches = patients.c.search.contains(term, autoescape=True)
            born = _birth_date_term(term)
            if born:
                matches = or_(matches, patients.c.birth_date.startswith(born, autoescape=True))
            stmt = stmt.where(matches)
        with self._engine.connect() as conn:
            rows = conn.execute(stmt.limit(min(max(0, int(limit)), 10_000))).all()
        return [self._patient(row) for row in rows]

    def same_patients(self, resource: Mapping[str, Any]) -> tuple[list[PatientRecord],
                                                                  list[PatientRecord]]:
        """Patients already on file that a new ``resource`` may be: those with its
        identifier value (exact), and those with its family and given names (any case)
        and birth date."""
        family, given, birth_date, identifier = _patient_columns(resource)
        with self._engine.connect() as conn:
            by_identifier = conn.execute(select(patients).where(
                patients.c.identifier == identifier)).all() if identifier else []
            by_person = conn.execute(select(patients).where(
                patients.c.birth_date == birth_date,
                func.lower(patients.c.family) == (family or "").casefold())).all() \
                if family and birth_date else []
        same = [r for r in by_person
                if (r.given or "").casefold() == (given or "").casefold()]
        return [self._patient(r) for r in by_identifier], [self._patient(r) for r in same]

    # -- exams ------------------------------------------------------------------------

    def create_exam(self, patient_id: str, questionnaire: str, *, answers: Mapping[str, Any],
                    draft: Mapping[str, Any], encounter: Mapping[str, Any] | None = None,
                    launch_id: str | None = None, exam_id: str | None = None,
                    episode_id: str | None = None,
                    audit: Audit | None = None) -> ExamRecord:
        """A new exam (version 1). ``exam_id`` may be chosen by the caller (a uuid), so a
        draft response naming it can be written in the same insert. ``episode_id``: the
        initial exam of the episode this one follows up (that patient's); None starts a
        new episode (an initial exam)."""
        key = _key(patient_id, "patient")
        new_id = str(uuid.uuid4()) if exam_id is None else _key(exam_id, "exam")
        episode = new_id if episode_id is None else _key(episode_id, "episode")
        values = {"answers": _json(answers, "answers"), "draft": _json(draft, "draft"),
                  "questionnaire": _text(questionnaire, "questionnaire"),
                  "encounter": None if encounter is None else _json(encounter, "encounter"),
                  "launch_id": None if launch_id is None else _key(launch_id, "launch")}
        now = _now()
        with self._writer.begin() as conn:
            _require(conn, patients, key, "patient")
            if episode != new_id:
                owner = conn.execute(select(exams.c.patient_id, exams.c.episode_id)
                                     .where(exams.c.id == episode)).one_or_none()
                if owner is None or owner.patient_id != key or owner.episode_id != episode:
                    raise InputError("A follow-up needs the initial exam of one of the "
                                     "patient's episodes.", status=422, code="business-rule")
            row = conn.execute(insert(exams).values(
                id=new_id, patient_id=key, state="draft", version=1,
                amend_reason=None, revisions=0, created=now, updated=now,
                episode_id=episode, **values).returning(*exams.c)).one()
            return _audited(conn, audit, self._exam(row))

    def exam(self, exam_id: str) -> ExamRecord:
        key = _key(exam_id, "exam")
        with self._engine.connect() as conn:
            row = _one(conn, select(exams).where(exams.c.id == key), f"no exam with id {key}")
        return self._exam(row)

    def exams_for(self, patient_id: str) -> list[ExamRecord]:
        """The patient's exams, newest first; NotFoundError for an unknown patient."""
        key = _key(patient_id, "patient")
        with self._engine.connect() as conn:
            rows = conn.execute(select(exams).where(exams.c.patient_id == key)
                                .order_by(exams.c.created.desc(), exams.c.id)).all()
            if not rows:
                _require(conn, patients, key, "patient")
        return [self._exam(row) for row in rows]

    def episode_exams(self, episode_id: str) -> list[ExamRecord]:
        """The exams of an episode (its initial exam and the follow-ups), oldest first;
        NotFoundError when no exam starts an episode of that id."""
        key = _key(episode_id, "episode")
        with self._engine.connect() as conn:
            rows = conn.execute(select(exams).where(exams.c.episode_id == key)
                                .order_by(exams.c.created, exams.c.id)).all()
        if not rows:
            raise NotFoundError(f"no episode with id {key}")
        return [self._exam(row) for row in rows]

    def save_draft(self, exam_id: str, *, expected_version: int, answers: Mapping[str, Any],
                   draft: Mapping[str, Any], audit: Audit | None = None) -> ExamRecord:
        """Replace the working answers and draft of a draft or amending exam."""
        key = _key(exam_id, "exam")
        values = {"answers": _json(answers, "answers"), "draft": _json(draft, "draft")}
        with self._writer.begin() as conn:
            row = _bump(conn, key, expected_version, EDITABLE, **values)
            return _audited(conn, audit, self._exam(row))

    def save_impression(self, exam_id: str, *, expected_version: int,
                        impression: Mapping[str, Any] | None,
                        audit: Audit | None = None) -> ExamRecord:
        """Replace the working impression and plan of a draft or amending exam (None or
        empty: none recorded)."""
        key = _key(exam_id, "exam")
        value = _json(impression, "impression") if impression else None
        with self._writer.begin() as conn:
            row = _bump(conn, key, expected_version, EDITABLE, impression=value)
            return _audited(conn, audit, self._exam(row))

    def sign(self, exam_id: str, *, expected_version: int, answers: Mapping[str, Any],
             response: Mapping[str, Any], provenance: Mapping[str, Any], signed_by: str,
             signed_at: dt.datetime, delivery: Mapping[str, Any] | None = None,
             observations: Sequence[ObservationRecord] | None = None,
             frozen: tuple[str, Mapping[str, Any]] | None = None,
             audit: Audit | None = None,
             impression: Mapping[str, Any] | None = None,
             prom_ids: Collection[str] | None = None) -> ExamRecord:
        """Lock the answers as the next revision; the amendment's reason goes with it.

        ``prom_ids``: the visit's outcome questionnaires the revision records (all
        finished). Checked in this transaction against what the visit holds: one added,
        removed or left unfinished since they were read is a ConflictError, nothing
        written, so no PROM is ever left out of, or locked unfinished by, a signature
        (PROM writes lock the exam's row, so the check and they never interleave).

        ``delivery``: the revision's transaction Bundle for the EHR, queued in the outbox
        in this same transaction, so a signed revision never lacks its delivery (and a
        failed signature queues nothing). ``outbox.py`` delivers it.

        ``observations``: the revision's Observations as the FHIR API serves them, stored
        in this same transaction (``observation_store``): once signed they are current,
        and the earlier revision's are no longer found by search.

        ``impression``: the clinician's impression and plan signed with it (kept with the
        revision; the exam keeps it too, so an amendment starts from it).

        ``frozen``: (knowledge version, inputs), what the revision's views and documents
        are made from (``record.freeze``), written in this same transaction: a signed
        revision never exists without them. Its documents are then rendered outside the
        request (``adapters.frozen``)."""
        key = _key(exam_id, "exam")
        decided = _json(impression, "impression") if impression else None
        answers, response = _json(answers, "answers"), _json(response, "response")
        payload = None if delivery is None else _json(delivery, "delivery")
        signature = {"provenance": _json(provenance, "provenance"),
                     "signed_by": _text(signed_by, "signed_by"), "signed_at": _aware(signed_at)}
        status = response.get("status")
        with self._writer.begin() as conn:
            row = _bump(conn, key, expected_version, EDITABLE, state="signed",
                        answers=answers, draft=None, revisions=exams.c.revisions + 1,
                        impression=decided)
            if prom_ids is not None:
                _same_proms(conn, key, prom_ids)
            # a response built for another revision number: refused, nothing written
            if status != ("completed" if row.revisions == 1 else "amended"):
                raise InputError(f"revision {row.revisions} cannot have status {status!r}",
                                 expression="status", status=422)
            conn.execute(insert(revisions).values(
                exam_id=key, number=row.revisions, status=status, answers=answers,
                response=response, reason=row.amend_reason, impression=decided,
                **signature))
            if observations is not None:
                observation_store.insert_revision(conn, key, row.revisions, row.patient_id,
                                                  observations, latest=row.revisions)
            if frozen is not None:
                version, inputs = frozen
                conn.execute(insert(frozen_inputs).values(
                    exam_id=key, revision=row.revisions, knowledge_version=_text(
                        version, "knowledge_version"), inputs=_json(inputs, "frozen"),
                    created=_now(), render_attempts=0))
            if payload is not None:
                now = _now()
                conn.execute(insert(outbox).values(
                    id=str(uuid.uuid4()), exam_id=key, revision=row.revisions,
                    payload=payload, state="pending", attempts=0, next_attempt_at=now,
                    created=now, updated=now))
            if row.amend_reason is not None:  # kept until now: it is the revision's reason
                row = conn.execute(update(exams).where(exams.c.id == key)
                                   .values(amend_reason=None).returning(*exams.c)).one()
            return _audited(conn, audit, self._exam(row))

    def begin_amendment(self, exam_id: str, *, expected_version: int, reason: str,
                        draft: Mapping[str, Any], audit: Audit | None = None) -> ExamRecord:
        """Reopen a signed exam for changes; ``reason`` is kept with the next revision."""
        key = _key(exam_id, "exam")
        if not isinstance(reason, str) or not reason.strip():
            raise InputError("An amendment needs a reason.", expression="reason",
                             status=422, code="required")
        values = {"amend_reason": _text(reason.strip(), "reason"), "draft": _json(draft, "draft")}
        with self._writer.begin() as conn:
            row = _bump(conn, key, expected_version, ("signed",), state="amending", **values)
            return _audited(conn, audit, self._exam(row))

    def cancel_amendment(self, exam_id: str, *, expected_version: int,
                         audit: Audit | None = None) -> ExamRecord:
        """Drop an amendment in progress: back to the answers of the latest revision."""
        key = _key(exam_id, "exam")
        def latest(column: Any) -> Any:
            return (select(column).where(revisions.c.exam_id == exams.c.id,
                                         revisions.c.number == exams.c.revisions)
                    .scalar_subquery())
        with self._writer.begin() as conn:
            row = _bump(conn, key, expected_version, ("amending",), state="signed",
                        answers=latest(revisions.c.answers), draft=None, amend_reason=None,
                        impression=latest(revisions.c.impression))
            return _audited(conn, audit, self._exam(row))

    def revisions(self, exam_id: str) -> list[Revision]:
        """Every signed revision, oldest first."""
        key = _key(exam_id, "exam")
        with self._engine.connect() as conn:
            rows = conn.execute(select(revisions).where(revisions.c.exam_id == key)
                                .order_by(revisions.c.number)).all()
            if not rows:
                _require(conn, exams, key, "exam")
        return [self._revision(row) for row in rows]

    def revision(self, exam_id: str, number: int) -> Revision:
        key = _key(exam_id, "exam")
        if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 2**31:
            raise NotFoundError(f"exam {key} has no revision {number!r}")
        with self._engine.connect() as conn:
            row = _one(conn, select(revisions).where(
                revisions.c.exam_id == key, revisions.c.number == number),
                f"exam {key} has no revision {number}")
        return self._revision(row)

    def signed_impressions(self, since: dt.datetime | None = None
                           ) -> list[Mapping[str, Any] | None]:
        """The impression column of each exam's latest revision (signed at or after
        ``since``), nothing else: what the decisions report counts."""
        statement = (select(_LATEST.c.impression).select_from(exams.join(_LATEST, and_(
            _LATEST.c.exam_id == exams.c.id, _LATEST.c.number == exams.c.revisions)))
            .order_by(_LATEST.c.signed_at))
        if since is not None:
            statement = statement.where(_LATEST.c.signed_at >= _aware(since))
        with self._engine.connect() as conn:
            return [row.impression for row in conn.execute(statement)]

    # -- current versions (read-only queries) ------------------------------------------

    def current(self, exam_id: str) -> Current:
        """The exam's current version; NotFoundError for an unknown exam."""
        key = _key(exam_id, "exam")
        with self._engine.connect() as conn:
            row = _one(conn, _current_select().where(exams.c.id == key),
                       f"no exam with id {key}")
        return self._current(row)

    def search_current(self, *, patient_ids: Collection[str] | None = None,
                       statuses: Collection[str] | None = None,
                       changed: Sequence[Sequence[TimeRange]] = (),
                       limit: int = 50, offset: int = 0) -> tuple[int, list[Current]]:
        """(total, page) of the exams' current versions, most recently changed first.

        ``patient_ids``: any of these patients (a malformed id matches nothing);
        ``statuses``: any of ``CURRENT_STATUSES``; ``changed``: ``Current.changed`` lies in
        one of the ranges of each list (lists AND, ranges within a list OR).
        """
        moment = _changed()
        conditions: list[Any] = []
        if patient_ids is not None:
            keys = [k for k in map(_maybe_key, patient_ids) if k is not None]
            conditions.append(exams.c.patient_id.in_(keys) if keys else false())
        if statuses is not None:
            wanted = set(statuses)
            conditions.append(or_(
                exams.c.revisions == 0 if "in-progress" in wanted else false(),
                _LATEST.c.status.in_(sorted(wanted & {"completed", "amended"}))))
        for ranges in changed:
            conditions.append(or_(false(), *(and_(
                moment >= start if start is not None else True,
                moment < end if end is not None else True) for start, end in ranges)))
        where = and_(True, *conditions)
        counted = select(func.count()).select_from(_current_from()).where(where)
        page = (_current_select().where(where).order_by(moment.desc(), exams.c.id)
                .limit(min(max(0, int(limit)), 10_000)).offset(max(0, int(offset))))
        with self._engine.connect() as conn:
            total = conn.execute(counted).scalar_one()
            rows = conn.execute(page).all() if limit > 0 else []
        return total, [self._current(row) for row in rows]

    # -- the signed revisions' Observations (``observation_store``) --------------------

    def add_observations(self, exam_id: str, revision: int,
                         records: Sequence[ObservationRecord]) -> bool:
        """Store the Observations of a revision signed before they were kept (the
        backfill). False, with nothing written, when they are already stored (another
        process got there first) or the revision does not exist."""
        key = _key(exam_id, "exam")
        with self._writer.begin() as conn:
            found = conn.execute(select(exams.c.patient_id, exams.c.revisions).select_from(
                exams.join(revisions, revisions.c.exam_id == exams.c.id))
                .where(exams.c.id == key, revisions.c.number == revision)).one_or_none()
            if found is None:
                return False
            try:
                with conn.begin_nested():
                    observation_store.insert_revision(conn, key, revision, found.patient_id,
                                                      records, latest=found.revisions)
            except exc.IntegrityError:
                return False
        return True

    def search_observations(self, *, patient_ids: Collection[str],
                            codes: Sequence[Sequence[observation_store.Token]] = (),
                            dates: Sequence[Sequence[TimeRange]] = (), sort: str = "-date",
                            limit: int = 50, offset: int = 0
                            ) -> tuple[int, list[ObservationRecord]]:
        """(total, page) of the patients' current Observations (``observation_store
        .search``); a malformed patient id matches nothing."""
        keys = [k for k in map(_maybe_key, patient_ids) if k is not None]
        return observation_store.search(self._engine, patient_ids=keys, codes=codes,
                                        dates=dates, sort=sort, limit=limit, offset=offset)

    def observation_versions(self, exam_id: str,
                             observation_id: str) -> observation_store.Versions:
        """Every stored revision of one Observation; NotFoundError for an unknown exam."""
        return observation_store.versions(self._engine, _key(exam_id, "exam"), observation_id)

    def revisions_without_observations(self) -> list[tuple[str, int]]:
        """(exam id, number) of the revisions signed before Observations were kept."""
        return observation_store.unmaterialised(self._engine)

    # -- rows to records --------------------------------------------------------------

    def _resource(self, value: Any) -> Any:
        return _resource_type_first(value) if self._reorder else value

    def _patient(self, row: Row[Any]) -> PatientRecord:
        return PatientRecord(id=row.id, resource=self._resource(row.resource),
                             created=row.created, ehr_base=row.ehr_base, ehr_id=row.ehr_id)

    def _exam(self, row: Row[Any]) -> ExamRecord:
        return ExamRecord(
            id=row.id, patient_id=row.patient_id, questionnaire=row.questionnaire,
            state=row.state, version=row.version, answers=row.answers,
            draft=None if row.draft is None else self._resource(row.draft),
            amend_reason=row.amend_reason, revisions=row.revisions, created=row.created,
            updated=row.updated, encounter=row.encounter, launch_id=row.launch_id,
            impression=row.impression, episode_id=row.episode_id)

    def _current(self, row: Row[Any]) -> Current:
        values = row._mapping
        revision = None
        if values["r_number"] is not None:
            revision = Revision(
                exam_id=row.id, number=values["r_number"], status=values["r_status"],
                answers=values["r_answers"], response=self._resource(values["r_response"]),
                provenance=self._resource(values["r_provenance"]),
                signed_by=values["r_signed_by"], signed_at=values["r_signed_at"],
                reason=values["r_reason"], impression=values["r_impression"])
        return Current(self._exam(row), revision)

    def _revision(self, row: Row[Any]) -> Revision:
        return Revision(
            exam_id=row.exam_id, number=row.number, status=row.status, answers=row.answers,
            response=self._resource(row.response), provenance=self._resource(row.provenance),
            signed_by=row.signed_by, signed_at=row.signed_at, reason=row.reason,
            impression=row.impression)


#: Each exam's latest revision, in the current-version queries.
_LATEST = revisions.alias("latest")


def _current_from() -> Any:
    """Each exam joined to its latest revision, if any (``revisions`` counts them)."""
    return exams.outerjoin(_LATEST, and_(_LATEST.c.exam_id == exams.c.id,
                                         _LATEST.c.number == exams.c.revisions))


def _changed() -> Any:
    """SQL for ``Current.changed``."""
    return type_coerce(case((exams.c.revisions == 0, exams.c.updated),
                            else_=_LATEST.c.signed_at), UTCDateTime())


def _current_select() -> Any:
    return select(exams, *(c.label(f"r_{c.name}") for c in _LATEST.c
                           if c.name != "exam_id")).select_from(_current_from())


def _bump(conn: Connection, key: str, expected: int, states: tuple[str, ...],
          **values: Any) -> Row[Any]:
    """The one conditional UPDATE every exam write starts with: it changes the row only
    if the caller saw the current version and the state allows it, and takes the row's
    lock, so racing writers are serialised and all but the first find a newer version."""
    if not isinstance(expected, int) or isinstance(expected, bool):
        raise InputError("expected_version must be a whole number")
    # a version beyond the column matches no row (and must not overflow a driver)
    match = expected if 0 < expected < 2**31 else 0
    row = conn.execute(
        update(exams)
        .where(exams.c.id == key, exams.c.version == match, exams.c.state.in_(states))
        .values(version=exams.c.version + 1, updated=_now(), **values)
        .returning(*exams.c)).one_or_none()
    if row is not None:
        return row
    state, version = _one(conn, select(exams.c.state, exams.c.version)
                          .where(exams.c.id == key), f"no exam with id {key}")
    if state not in states:
        raise _wrong_state(state, states, version)
    raise ConflictError(f"the exam changed since version {expected}; "
                        f"it is now at version {version}: reload it", current=version)


def _same_proms(conn: Connection, exam_key: str, signed: Collection[str]) -> None:
    """Refuse a signature whose outcome questionnaires are no longer the visit's."""
    rows = conn.execute(select(prom_responses.c.id, prom_responses.c.state)
                        .where(prom_responses.c.exam_id == exam_key)).all()
    if {r.id for r in rows} != set(signed) or any(r.state != "completed" for r in rows):
        raise ConflictError("The visit's outcome questionnaires changed while it was being "
                            "signed: review them and sign again.")


def _audit(conn: Connection, audit: Audit | None, record: Any) -> None:
    """Append the write's AuditEvents on its own connection (its transaction). A failed
    append is an ``AuditUnavailable`` raised inside the transaction: the write is rolled
    back with it, never kept unaudited."""
    if audit is None:
        return
    from . import audit as trail  # the trail imports this module (TimeRange)

    try:
        for event in audit(record):
            trail.append(conn, event)
    except exc.SQLAlchemyError as error:  # the class only: the text may quote the event
        raise trail.AuditUnavailable(f"the audit record could not be written "
                                     f"({type(error).__name__}); nothing was changed",
                                     original_error=error) from error


def _audited(conn: Connection, audit: Audit | None, record: Any) -> Any:
    _audit(conn, audit, record)
    return record


def _one(conn: Connection, statement: Any, missing: str) -> Row[Any]:
    """The one row ``statement`` selects; NotFoundError(``missing``) when there is none."""
    row = conn.execute(statement).one_or_none()
    if row is None:
        raise NotFoundError(missing)
    return row


def _require(conn: Connection, table: Any, key: str, what: str) -> None:
    """NotFoundError unless ``table`` has a row with id ``key``."""
    if conn.execute(select(table.c.id).where(table.c.id == key)).first() is None:
        raise NotFoundError(f"no {what} with id {key}")


def _wrong_state(state: str, wanted: tuple[str, ...], version: int) -> PluginError:
    if wanted == EDITABLE:  # a signed exam's answers are locked
        return LockedError("the exam is signed: begin an amendment (with a reason) "
                           "to change it")
    if wanted == ("signed",):
        message = ("an amendment is already in progress" if state == "amending"
                   else "the exam is not signed yet: there is nothing to amend")
    else:
        message = "no amendment is in progress"
    return ConflictError(message, current=version)


# -- input checks -----------------------------------------------------------------------

def _key(value: Any, what: str) -> str:
    """A well-formed id, or NotFoundError: a malformed one names nothing stored, and
    must never reach PostgreSQL's uuid parser as a database error."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise NotFoundError(f"no {what} with that id") from None


def _maybe_key(value: Any) -> str | None:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


def _json(value: Any, field: str) -> dict[str, Any]:
    """A JSON object both backends store unchanged: no NaN or infinity (not JSON), no
    NUL characters (PostgreSQL text and JSONB refuse them). Returns a detached copy."""
    if not isinstance(value, Mapping):
        raise InputError(f"{field} must be a JSON object", expression=field)
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as error:
        raise InputError(f"{field} is not storable JSON: {error}", expression=field) from None
    copy = json.loads(text)
    if _has_nul(copy):
        raise InputError(f"{field} contains a NUL character", expression=field)
    return dict(copy)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InputError(f"{field} must be non-empty text", expression=field, status=422)
    return value


def _aware(value: Any) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise InputError("signed_at must be a datetime with a timezone",
                         expression="signed_at", status=422)
    return value.astimezone(dt.timezone.utc)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


#: A birth date as people type it in the search box: ISO (or its year / year-month), or
#: day/month/year as written in the UK.
_ISO_PREFIX = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
_DMY = re.compile(r"(\d{1,2})[/.](\d{1,2})[/.](\d{4})")


def _birth_date_term(term: str) -> str | None:
    """The ISO birth date (or its prefix) a search term stands for, else None."""
    if _ISO_PREFIX.fullmatch(term):
        return term
    dmy = _DMY.fullmatch(term)
    if dmy:
        day, month, year = dmy.groups()
        return f"{year}-{int(month):02d}-{int(day):02d}"
    return None


def _patient_values(patient_id: str, resource: Mapping[str, Any]) -> dict[str, Any]:
    """The stored resource (under our id) and the columns copied out of it."""
    stored = _json({"resourceType": "Patient", "id": patient_id,
                    **{k: v for k, v in resource.items() if k not in ("resourceType", "id")}},
                   "patient")
    family, given, birth_date, identifier = _patient_columns(stored)
    search = "\n".join(p for p in (family, given, identifier) if p).casefold()
    return {"resource": stored, "family": family, "given": given, "birth_date": birth_date,
            "identifier": identifier, "search": search}


def _patient_columns(resource: Mapping[str, Any]) -> tuple[str | None, ...]:
    """family, given (joined), birthDate, identifier[0].value: tolerant of any shape."""
    def first(value: Any) -> Any:
        return value[0] if isinstance(value, list) and value else None

    def string(value: Any) -> str | None:
        return value if isinstance(value, str) and value else None

    name = first(resource.get("name"))
    name = name if isinstance(name, Mapping) else {}
    given = name.get("given")
    given = " ".join(g for g in given if isinstance(g, str)) if isinstance(given, list) else None
    identifier = first(resource.get("identifier"))
    identifier = identifier.get("value") if isinstance(identifier, Mapping) else None
    birth_date = string(resource.get("birthDate"))
    return (string(name.get("family")), string(given),
            birth_date if birth_date and len(birth_date) <= 10 else None, string(identifier))


def _resource_type_first(value: Any) -> Any:
    if isinstance(value, dict):
        items = {k: _resource_type_first(v) for k, v in value.items()}
        if "resourceType" in items:
            return {"resourceType": items.pop("resourceType"), **items}
        return items
    if isinstance(value, list):
        return [_resource_type_first(v) for v in value]
    return value


# -- the app --------------------------------------------------------------------------

def database_url(app: Any) -> str:
    """The configured URL, or the embedded default: an SQLite file in the instance folder."""
    url = app.config.get("DATABASE_URL") or ""
    if url:
        return str(url)
    os.makedirs(app.instance_path, exist_ok=True)
    return f"sqlite:///{Path(app.instance_path) / 'plugin.sqlite3'}"


def init_app(app: Any) -> None:
    """Open the store for ``app``; migrate first unless DATABASE_UPGRADE is off."""
    store = Store(database_url(app))
    if app.config.get("DATABASE_UPGRADE", True):
        store.upgrade()
    app.extensions[EXTENSION_KEY] = store


def from_app(app: Any) -> Store:
    store: Store = app.extensions[EXTENSION_KEY]
    return store
