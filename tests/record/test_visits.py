"""Which visits are prior (record/visits.py, the one place that decides it): the signed
visits of the episode a follow-up names; an initial exam starts a new one. On SQLite and
on a real PostgreSQL."""
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
          signed: dt.date | None, episode: ExamRecord | None = None) -> ExamRecord:
    exam = store.create_exam(patient_id, questionnaire, answers=answers,
                             episode_id=None if episode is None else episode.id,
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


def test_a_follow_up_counts_the_signed_visits_of_its_own_episode(store) -> None:
    pid = store.add_patient(PATIENT).id
    old = _exam(store, pid, INITIAL, {"pain.current": 8}, dt.date(2025, 1, 10))  # another episode
    _exam(store, pid, FOLLOW_UP, {"pain.current": 8}, dt.date(2025, 2, 10), old)
    first = _exam(store, pid, INITIAL, {"pain.current": 7, "history.duration":
                                        {"value": 3, "unit": "wk"}}, dt.date(2026, 9, 7))
    _exam(store, pid, INITIAL, {"pain.current": 1}, None)  # a draft: not a visit
    second = _exam(store, pid, FOLLOW_UP, {"pain.current": 6}, dt.date(2026, 10, 5), first)
    current = _exam(store, pid, FOLLOW_UP, {"pain.current": 5}, None, first)
    _exam(store, pid, FOLLOW_UP, {"pain.current": 4}, dt.date(2026, 11, 5), old)  # later, elsewhere
    prior = visits.prior_visits(store, current)
    assert [(v.exam_id, v.kind, v.date) for v in prior] == [
        (first.id, "initial", dt.date(2026, 9, 7)), (second.id, "follow-up", dt.date(2026, 10, 5))]
    assert prior[0].answers["history.duration"] == {"value": 3, "unit": "wk"}
    assert prior[0].top_condition is None  # nothing frozen with these bare signatures


def test_an_initial_exam_starts_a_new_episode(store) -> None:
    pid = store.add_patient(PATIENT).id
    _exam(store, pid, INITIAL, {"pain.current": 7}, dt.date(2026, 9, 7))
    again = _exam(store, pid, INITIAL, {"pain.current": 2}, None)
    assert again.episode_id == again.id
    assert visits.prior_visits(store, again) == []


def test_a_follow_up_of_an_unsigned_episode_has_nothing_to_count_from(store) -> None:
    pid = store.add_patient(PATIENT).id
    first = _exam(store, pid, INITIAL, {"pain.current": 6}, None)
    current = _exam(store, pid, FOLLOW_UP, {"pain.current": 5}, None, first)
    assert visits.prior_visits(store, current) == []


def test_visit_kinds_follow_the_questionnaire() -> None:
    assert visits.kind_of(FOLLOW_UP) == "follow-up"
    assert visits.kind_of("posterior-thigh-follow-up") == "follow-up"
    assert visits.kind_of(INITIAL) == "initial"


def test_a_visit_is_on_the_clinics_day(store) -> None:
    pid = store.add_patient(PATIENT).id
    late = dt.datetime(2026, 9, 7, 23, 30, tzinfo=dt.timezone.utc)  # 8 Sep 11:30 in Auckland
    first = store.create_exam(pid, INITIAL, answers={}, draft={
        "resourceType": "QuestionnaireResponse", "status": "in-progress", "questionnaire": INITIAL})
    first = store.sign(first.id, expected_version=first.version, answers={}, response={
        "resourceType": "QuestionnaireResponse", "status": "completed", "questionnaire": INITIAL},
        provenance={"resourceType": "Provenance"}, signed_by="Dr Lee", signed_at=late)
    current = _exam(store, pid, FOLLOW_UP, {}, None, first)
    (visit,) = visits.prior_visits(store, current, time_zone="Pacific/Auckland")
    assert visit.date == dt.date(2026, 9, 8)
    (in_utc,) = visits.prior_visits(store, current)
    assert in_utc.date == dt.date(2026, 9, 7)
