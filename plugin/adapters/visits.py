"""A patient's visits as the visit list and the progress page need them, in one query.

Why its own query: the patient page and the progress page list every exam with its
date, type, affected side and top condition, and the progress page marks the referrals
the clinician made. Read exam by exam that is three queries a visit (the exam, its
revision, its frozen inputs); for a patient with 50 visits the page must stay under
100 ms. Of the frozen inputs only the first entry of the assessment's differential is
read (a JSON path in SQL): the inputs also hold each document's HTML, a hundred
kilobytes a visit that nothing here needs.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, and_, func, select, type_coerce

from .store import Store, _key
from .tables import exams, frozen_inputs, revisions


@dataclass(frozen=True)
class VisitRow:
    """One exam of the patient. For a signed exam: ``first_signed`` (revision 1's time,
    the visit's date), the latest revision's ``answers`` and ``impression`` as signed,
    and ``top`` the first entry of its frozen assessment's differential (None for a
    revision signed before freezing). A draft has only what it is."""

    exam_id: str
    questionnaire: str
    state: str
    created: dt.datetime
    revisions: int
    first_signed: dt.datetime | None
    answers: Mapping[str, Any] | None
    impression: Mapping[str, Any] | None
    top: Mapping[str, Any] | None


_LATEST = revisions.alias("visit_latest")
_FIRST = revisions.alias("visit_first")


def of_patient(store: Store, patient_id: str) -> list[VisitRow]:
    """Every exam of the patient, oldest first (by first signature, a draft by when it
    was begun); NotFoundError-free: an unknown patient has none."""
    top = type_coerce(frozen_inputs.c.inputs, JSON)[("assessment", "differential", 0)]
    when = func.coalesce(_FIRST.c.signed_at, exams.c.created)
    statement = (
        select(exams.c.id, exams.c.questionnaire, exams.c.state, exams.c.created,
               exams.c.revisions, _FIRST.c.signed_at.label("first_signed"),
               _LATEST.c.answers, _LATEST.c.impression, top.label("top"))
        .select_from(
            exams.outerjoin(_LATEST, and_(_LATEST.c.exam_id == exams.c.id,
                                          _LATEST.c.number == exams.c.revisions))
            .outerjoin(_FIRST, and_(_FIRST.c.exam_id == exams.c.id, _FIRST.c.number == 1))
            .outerjoin(frozen_inputs, and_(frozen_inputs.c.exam_id == exams.c.id,
                                           frozen_inputs.c.revision == exams.c.revisions)))
        .where(exams.c.patient_id == _key(patient_id, "patient"))
        .order_by(when, exams.c.id))
    with store.engine.connect() as conn:
        rows = conn.execute(statement).all()
    return [VisitRow(exam_id=row.id, questionnaire=row.questionnaire, state=row.state,
                     created=row.created, revisions=row.revisions,
                     first_signed=row.first_signed, answers=row.answers,
                     impression=row.impression,
                     top=row.top if isinstance(row.top, Mapping) else None)
            for row in rows]
