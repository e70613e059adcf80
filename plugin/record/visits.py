"""Which signed visits came before this one, and the decision support that uses them.

Why here: the episode's visits are read from the store (each one's latest signed
revision), and the engine and the documents want them as plain ``decision.episode.Visit``
records; this is the one place that decides which visits are prior: the signed visits of the
episode the follow-up belongs to (``exams.episode_id``, ``Store.episode_exams``). An
initial exam starts a new episode and has no prior visits.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from ..adapters.store import ExamRecord, Store
from ..core import datetimes
from ..decision import visit_report
from ..decision.episode import Visit
from ..knowledge import FOLLOW_UP_FORM
from . import freeze


def kind_of(questionnaire: str) -> str:
    """A visit's type from its Questionnaire's canonical (``url|version``) or id."""
    url = questionnaire.partition("|")[0]
    return "follow-up" if url.rstrip("/").rsplit("/", 1)[-1] == FOLLOW_UP_FORM else "initial"


def prior_visits(store: Store, exam: ExamRecord, *, time_zone: str = "UTC") -> list[Visit]:
    """The episode's signed visits before ``exam``, oldest first; none for an initial
    exam (it starts its episode). Each is its latest signed revision (an amendment
    replaces what it amended). The episode is the one the follow-up names
    (``exams.episode_id``), so a patient who comes back with a new complaint, a new
    initial exam, is never compared with the old one."""
    if kind_of(exam.questionnaire) != "follow-up" or not exam.episode_id:
        return []
    earlier = [e for e in store.episode_exams(exam.episode_id)  # oldest first
               if e.id != exam.id and e.revisions and e.created <= exam.created]
    return [_visit(store, record, time_zone) for record in earlier]


def episode_view(kb: Any, prior: list[Visit], answers: Mapping[str, Any], *,
                 exam: ExamRecord, on: dt.date, top_condition: str | None,
                 impression: tuple[str, ...] = (), proms: Sequence[Mapping[str, Any]] = (),
                 earlier_proms: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any] | None:
    """The "Since last visit" table, the return-to-sport checklist and what has improved
    (``decision.visit_report``) for this visit's plain ``answers``; None without prior
    visits. ``proms``: this visit's scored outcome measures, compared with
    ``earlier_proms``, the last visit's (``previous_proms``), in the same table."""
    if not prior:
        return None
    current = Visit(exam.id, kind_of(exam.questionnaire), on, dict(answers), top_condition)
    meanings = kb.interpretations
    scores = ((visit_report.prom_scores(earlier_proms, meanings),
               visit_report.prom_scores(proms, meanings)) if proms else None)
    return visit_report.view(kb.decision.course, kb.return_to_sport, [*prior, current],
                             impression=impression, proms=scores, meanings=meanings)


def previous_proms(store: Store, prior: list[Visit]) -> list[Mapping[str, Any]]:
    """The outcome measures signed with the last prior visit (its frozen revision)."""
    if not prior:
        return []
    last = store.exam(prior[-1].exam_id)
    frozen = freeze.read(store, last.id, last.revisions)
    return list(frozen[0].prom_responses) if frozen is not None else []


def _visit(store: Store, record: ExamRecord, time_zone: str) -> Visit:
    revision = store.revision(record.id, record.revisions)
    frozen = freeze.read(store, record.id, record.revisions)
    top = None
    if frozen is not None:
        ranked = frozen[0].assessment.get("differential") or []
        top = ranked[0]["condition"] if ranked else None
    return Visit(record.id, kind_of(record.questionnaire),
                 datetimes.local_day(revision.signed_at, time_zone),
                 dict(revision.answers), top)
