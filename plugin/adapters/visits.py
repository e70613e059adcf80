"""A patient's visits as the visit list and the progress page need them, in one query.

Why its own query: the patient page and the progress page list every exam with its
date, type, affected side and top condition, and the progress page marks the referrals
the clinician made. Read exam by exam that is three queries a visit (the exam, its
revision, its frozen inputs); for a patient with 50 visits the page must stay under
100 ms. The top condition is the first of the suggested conditions the signed
impression kept (``outcomes.suggested_conditions``: the frozen assessment's ranking,
stored beside it at the same signature). Only for a revision signed before that was
kept is the frozen assessment itself read, its first differential entry alone by a JSON
path in SQL: the frozen inputs also hold each document's HTML, a hundred kilobytes a
visit that nothing here needs.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, and_, func, select, tuple_, type_coerce

from .store import Store, _key
from .tables import exams, frozen_inputs, revisions


@dataclass(frozen=True)
class VisitRow:
    """One exam of the patient. For a signed exam: ``first_signed`` (revision 1's time,
    the visit's date), the latest revision's ``answers`` and ``impression`` as signed,
    and ``top`` its first suggested condition: ``{"condition": id}`` from the signed
    impression, or the frozen assessment's first differential entry (``display``,
    ``suggested``) for a revision signed before impressions kept their outcomes; None
    when neither exists. A draft has only what it is."""

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
    was begun); an unknown patient has none."""
    when = func.coalesce(_FIRST.c.signed_at, exams.c.created)
    statement = (
        select(exams.c.id, exams.c.questionnaire, exams.c.state, exams.c.created,
               exams.c.revisions, _FIRST.c.signed_at.label("first_signed"),
               _LATEST.c.answers, _LATEST.c.impression)
        .select_from(
            exams.outerjoin(_LATEST, and_(_LATEST.c.exam_id == exams.c.id,
                                          _LATEST.c.number == exams.c.revisions))
            .outerjoin(_FIRST, and_(_FIRST.c.exam_id == exams.c.id, _FIRST.c.number == 1)))
        .where(exams.c.patient_id == _key(patient_id, "patient"))
        .order_by(when, exams.c.id))
    with store.engine.connect() as conn:
        rows = conn.execute(statement).all()
        tops = {row.id: _ranked(row.impression) for row in rows if row.revisions}
        older = [(row.id, row.revisions) for row in rows
                 if row.revisions and tops[row.id] is None]
        if older:
            tops.update(_frozen_tops(conn, older))
    return [VisitRow(exam_id=row.id, questionnaire=row.questionnaire, state=row.state,
                     created=row.created, revisions=row.revisions,
                     first_signed=row.first_signed, answers=row.answers,
                     impression=row.impression, top=tops.get(row.id))
            for row in rows]


def _ranked(impression: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The first suggested condition a signed impression kept; {} when it kept that
    none was suggested; None when it kept no outcomes (signed before they were kept)."""
    outcomes = (impression or {}).get("outcomes")
    if not isinstance(outcomes, Mapping) or \
            not isinstance(outcomes.get("suggested_conditions"), list):
        return None
    ranked = outcomes["suggested_conditions"]
    return {"condition": ranked[0]} if ranked else {}


def _frozen_tops(conn: Any, keys: list[tuple[str, int]]) -> dict[str, Mapping[str, Any]]:
    """The first differential entry of these revisions' frozen assessments."""
    top = type_coerce(frozen_inputs.c.inputs, JSON)[("assessment", "differential", 0)]
    found = conn.execute(select(frozen_inputs.c.exam_id, top.label("top")).where(
        tuple_(frozen_inputs.c.exam_id, frozen_inputs.c.revision).in_(keys))).all()
    return {row.exam_id: row.top for row in found if isinstance(row.top, Mapping)}
