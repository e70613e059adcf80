"""The outcome measures (PROMs) of a visit: table ``prom_responses``, and the patient mode
of a sign-in session (``sessions.patient_prom_id``).

A PROM belongs to its exam's record, so it changes only while the exam does: every
write first takes the exam's row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's
writer transaction is ``BEGIN IMMEDIATE``, one writer at a time) and refuses with
``LockedError`` when the exam is signed, so a PROM can never change under a signature
that is being written. Autosaves carry the version they were based on, like the exam's
drafts: a stale one is a ``ConflictError`` naming the current version, nothing written.
Each write's AuditEvent is appended in its own transaction (``store._audit``).
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from ..errors import ConflictError, InputError, LockedError, NotFoundError
from . import engine as engine_mod
from .store import Audit, Store, _audit, _json, _key, _text
from .tables import EDITABLE, exams, prom_responses, sessions

#: The message of a write refused because the exam is signed.
LOCKED = ("The exam is signed: its outcome questionnaires are part of the signed record. "
          "Begin an amendment (with a reason) to change them.")


@dataclass(frozen=True)
class PromRecord:
    """One PROM of a visit as stored (detached: plain dicts)."""

    id: str
    exam_id: str
    patient_id: str
    position: int
    instrument: str  # canonical "url|version"
    state: str  # in-progress | completed
    version: int
    answers: Mapping[str, Any]
    response: Mapping[str, Any]
    created: dt.datetime
    updated: dt.datetime
    added_by: str

    @property
    def finished(self) -> bool:
        return self.state == "completed"


def add(store: Store, exam_id: str, instrument: str, *, answers: Mapping[str, Any],
        response: Mapping[str, Any], added_by: str, prom_id: str | None = None,
        audit: Audit | None = None) -> PromRecord:
    """A new PROM (version 1, in progress), last in the exam's list. ``prom_id`` may be
    chosen by the caller so the response can name it in the same insert."""
    key = _key(exam_id, "exam")
    new_id = str(uuid.uuid4()) if prom_id is None else _key(prom_id, "outcome questionnaire")
    now = dt.datetime.now(dt.timezone.utc)
    with engine_mod.writer(store.engine).begin() as conn:
        patient_id = _editable_exam(conn, key)
        position = conn.execute(select(func.coalesce(func.max(prom_responses.c.position), 0))
                                .where(prom_responses.c.exam_id == key)).scalar_one() + 1
        row = conn.execute(insert(prom_responses).values(
            id=new_id, exam_id=key, position=position,
            instrument=_text(instrument, "instrument"), state="in-progress", version=1,
            answers=_json(answers, "answers"), response=_json(response, "response"),
            created=now, updated=now, added_by=_text(added_by, "added_by"))
            .returning(*prom_responses.c)).one()
        record = _record(row, patient_id)
        _audit(conn, audit, record)
    return record


def get(store: Store, prom_id: str) -> PromRecord:
    """One PROM; NotFoundError when there is none with that id."""
    key = _key(prom_id, "outcome questionnaire")
    with store.engine.connect() as conn:
        row = conn.execute(_select().where(prom_responses.c.id == key)).one_or_none()
    if row is None:
        raise NotFoundError(f"no outcome questionnaire with id {key}")
    return _record(row, row.patient_id)


def for_exam(store: Store, exam_id: str) -> list[PromRecord]:
    """The exam's PROMs in the order they were added."""
    key = _key(exam_id, "exam")
    with store.engine.connect() as conn:
        rows = conn.execute(_select().where(prom_responses.c.exam_id == key)
                            .order_by(prom_responses.c.position)).all()
    return [_record(row, row.patient_id) for row in rows]


def save(store: Store, prom_id: str, *, expected_version: int, answers: Mapping[str, Any],
         response: Mapping[str, Any], complete: bool = False,
         audit: Audit | None = None) -> PromRecord:
    """Replace an unfinished PROM's answers and response (``complete``: and finish it);
    refused on a stale version (ConflictError), a finished PROM (ConflictError) or a
    signed exam (LockedError)."""
    values = {"answers": _json(answers, "answers"), "response": _json(response, "response")}
    if complete:
        values["state"] = "completed"
    return _write(store, prom_id, expected_version, audit, values)


def remove(store: Store, prom_id: str, *, expected_version: int,
           audit: Audit | None = None) -> PromRecord:
    """Take an unfinished PROM off the visit (a finished one is part of the visit's
    record: it stays). Returns the PROM as it was."""
    return _write(store, prom_id, expected_version, audit, None)


def _write(store: Store, prom_id: str, expected: int, audit: Audit | None,
           values: dict[str, Any] | None) -> PromRecord:
    if not isinstance(expected, int) or isinstance(expected, bool):
        raise InputError("expected_version must be a whole number")
    key = _key(prom_id, "outcome questionnaire")
    with engine_mod.writer(store.engine).begin() as conn:
        found = conn.execute(select(prom_responses.c.exam_id)
                             .where(prom_responses.c.id == key)).one_or_none()
        if found is None:
            raise NotFoundError(f"no outcome questionnaire with id {key}")
        patient_id = _editable_exam(conn, found.exam_id)
        current = conn.execute(select(prom_responses).where(prom_responses.c.id == key)
                               .with_for_update()).one()
        if current.state != "in-progress":
            raise ConflictError("This questionnaire is finished: it can no longer be "
                                "changed or removed.", current=current.version)
        if current.version != expected:
            raise ConflictError(f"the questionnaire changed since version {expected}; it is "
                                f"now at version {current.version}: reload it",
                                current=current.version)
        if values is None:
            record = _record(current, patient_id)
            conn.execute(delete(prom_responses).where(prom_responses.c.id == key))
        else:
            row = conn.execute(update(prom_responses).where(prom_responses.c.id == key)
                               .values(version=current.version + 1,
                                       updated=dt.datetime.now(dt.timezone.utc), **values)
                               .returning(*prom_responses.c)).one()
            record = _record(row, patient_id)
        _audit(conn, audit, record)
    return record


def _editable_exam(conn: Connection, exam_key: str) -> str:
    """The exam's patient id, its row locked for this transaction; LockedError once it
    is signed."""
    row = conn.execute(select(exams.c.state, exams.c.patient_id)
                       .where(exams.c.id == exam_key).with_for_update()).one_or_none()
    if row is None:
        raise NotFoundError(f"no exam with id {exam_key}")
    if row.state not in EDITABLE:
        raise LockedError(LOCKED)
    return str(row.patient_id)


def _select() -> Any:
    return (select(prom_responses, exams.c.patient_id)
            .join_from(prom_responses, exams, prom_responses.c.exam_id == exams.c.id))


def _record(row: Any, patient_id: str) -> PromRecord:
    return PromRecord(id=str(row.id), exam_id=str(row.exam_id), patient_id=str(patient_id),
                      position=row.position, instrument=row.instrument, state=row.state,
                      version=row.version, answers=row.answers, response=row.response,
                      created=row.created, updated=row.updated, added_by=row.added_by)


# -- patient mode --------------------------------------------------------------------------

def patient_mode(store: Store, session_id: str, prom_id: str | None) -> None:
    """Put the session (its id: the token's digest) in patient mode for ``prom_id``, or
    take it out (None). Stored with the session, so it holds on every process, after a
    reload and in a new tab."""
    value = None if prom_id is None else _key(prom_id, "outcome questionnaire")
    with engine_mod.writer(store.engine).begin() as conn:
        conn.execute(update(sessions).where(sessions.c.id == session_id)
                     .values(patient_prom_id=value))
