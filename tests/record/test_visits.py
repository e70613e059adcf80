"""Which visits are prior (record/visits.py, the one place that decides it): a
follow-up's episode runs back to the latest initial exam before it; an initial exam
starts a new one. On SQLite and on a real PostgreSQL."""
from __future__ import annotations

import datetime as dt

from plugin.adapters.store import ExamRecord, Store
from plugin.record import visits

BASE = "http://posterior-thigh-exam.org/fhir/Questionnaire"
INITIAL = f"{BASE}/posterior-thigh-exam|0.1.0"
FOLLOW_UP = f"{BASE}/posterior-thigh-follow-up|1.0.0"
PATIENT = {"resourceType": "Patient", "name": [{"family": "Brennan", "given": ["Chloe"]}],
           "birthDate": "1991-07-23"}


def _exam(store: Store, patient_id: str, questionnaire: str, answers: dict,
          signed: dt.date | None) -> ExamRecord:
    exam = store.create_exam(patient_id, questionnaire, answers=answers,
                             draft={"resourceType": "QuestionnaireResponse",
                                    "status": "in-progress", "questionnaire": questionnaire})
    if signed is None:
        return exam
    return store.sign(exam.id, expected_version=exam.version, answers=answers,
                      response={"resourceType": "QuestionnaireResponse",
                                "status": "completed", "questionnaire": questionnaire},
                      provenance={"resourceType": "Provenance"}, signed_by="Dr Lee",
                      signed_at=dt.datetime.combine(signed, dt.time(10),
                                                    tzinfo=dt.timezone.utc))


def test_a_follow_up_counts_back_to_the_latest_initial_exam(store) -> None:
    pid = store.add_patient(PATIENT).id
    _exam(store, pid, INITIAL, {"pain.current": 8}, dt.date(2025, 1, 10))  # an old episode
    first = _exam(store, pid, INITIAL, {"pain.current": 7, "history.duration":
                                        {"value": 3, "unit": "wk"}}, dt.date(2026, 9, 7))
    _exam(store, pid, INITIAL, {"pain.current": 1}, None)  # a draft: not a visit
    second = _exam(store, pid, FOLLOW_UP, {"pain.current": 6}, dt.date(2026, 10, 5))
    current = _exam(store, pid, FOLLOW_UP, {"pain.current": 5}, None)
    prior = visits.prior_visits(store, current)
    assert [(v.exam_id, v.kind, v.date) for v in prior] == [
        (first.id, "initial", dt.date(2026, 9, 7)), (second.id, "follow-up", dt.date(2026, 10, 5))]
    assert prior[0].answers["history.duration"] == {"value": 3, "unit": "wk"}
    assert prior[0].top_condition is None  # nothing frozen with these bare signatures


def test_an_initial_exam_starts_a_new_episode(store) -> None:
    pid = store.add_patient(PATIENT).id
    _exam(store, pid, INITIAL, {"pain.current": 7}, dt.date(2026, 9, 7))
    again = _exam(store, pid, INITIAL, {"pain.current": 2}, None)
    assert visits.prior_visits(store, again) == []


def test_a_follow_up_without_its_initial_exam_has_nothing_to_count_from(store) -> None:
    pid = store.add_patient(PATIENT).id
    _exam(store, pid, FOLLOW_UP, {"pain.current": 6}, dt.date(2026, 10, 5))
    current = _exam(store, pid, FOLLOW_UP, {"pain.current": 5}, None)
    assert visits.prior_visits(store, current) == []


def test_visit_kinds_follow_the_questionnaire() -> None:
    assert visits.kind_of(FOLLOW_UP) == "follow-up"
    assert visits.kind_of("posterior-thigh-follow-up") == "follow-up"
    assert visits.kind_of(INITIAL) == "initial"
