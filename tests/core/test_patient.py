"""The Patient beside the answers: subject reference and age from birthDate."""
from __future__ import annotations

import datetime as dt

import pytest

from plugin.core import patient
from plugin.record import pipeline
from plugin.errors import AnswerError, InputError

NOW = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(("birth_date", "age"), [
    ("1986-11-21", 40), ("1986-11-22", 39), ("2000-02-29", 26), ("1990", 36), ("1990-12", 35),
])
def test_age_on_the_exam_date(birth_date: str, age: int) -> None:
    assert patient.age_on(birth_date, NOW.date()) == age


def test_subject_and_age_are_filled_from_the_patient(kb) -> None:
    exam = pipeline.exam_from_input(kb, {"pain.current": 2}, now=NOW, patient={
        "resourceType": "Patient", "id": "p1", "birthDate": "1986-11-22",
        "identifier": [{"system": "urn:mrn", "value": "123"}], "name": [{"text": "A. B."}]})
    assert exam.answers["patient.age-years"] == (39,)
    assert exam.context.subject == {"reference": "Patient/p1",
                                    "identifier": {"system": "urn:mrn", "value": "123"},
                                    "display": "A. B."}


def test_a_birth_date_after_the_exam_is_refused(kb) -> None:
    with pytest.raises(InputError) as caught:
        pipeline.exam_from_input(kb, {}, now=NOW, patient={"resourceType": "Patient",
                                                           "birthDate": "2090-01-01"})
    assert "birthDate 2090-01-01 is after the exam date 2026-11-21" in caught.value.message


def test_an_age_contradicting_the_birth_date_is_refused(kb) -> None:
    with pytest.raises(AnswerError) as caught:
        pipeline.exam_from_input(kb, {"patient.age-years": 30}, now=NOW,
                                 patient={"resourceType": "Patient", "birthDate": "1986-11-21"})
    assert "does not match the Patient's birthDate" in caught.value.errors["patient.age-years"][0]


def test_a_received_response_with_a_numeric_authored_is_refused(kb) -> None:
    with pytest.raises(InputError) as caught:
        pipeline.exam_from_input(kb, {
            "resourceType": "QuestionnaireResponse", "status": "completed", "authored": 5,
            "questionnaire": "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam"},
            now=NOW)
    assert caught.value.issues[0][0] == "QuestionnaireResponse.authored"
