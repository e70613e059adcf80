"""populate: the answers a Patient fills (age from birthDate, on the given date), the
in-progress response holding them, and warnings instead of errors for what cannot be
filled. Pure: no app, no clock."""
from __future__ import annotations

import datetime as dt

import pytest

from plugin.core import fhir_models
from plugin.record import pipeline
from plugin.core.populate import NO_BIRTH_DATE, NO_PATIENT, populate

ON = dt.date(2026, 11, 21)
PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1986-11-21",
           "identifier": [{"system": "urn:mrn", "value": "123"}], "name": [{"text": "A. B."}]}


def _age_answer(response: dict) -> list:
    group = next(i for i in response["item"] if any(
        c["linkId"] == "patient.age-years" for c in i.get("item", [])))
    return next(c for c in group["item"] if c["linkId"] == "patient.age-years")["answer"]


@pytest.mark.parametrize(("birth_date", "age"), [
    ("1986-11-21", 40),  # the birthday itself: a year older
    ("1986-11-22", 39),  # the day before the birthday
    ("2000-02-29", 26),
])
def test_age_is_computed_on_the_given_date(form, birth_date: str, age: int) -> None:
    result = populate(form, {**PATIENT, "birthDate": birth_date}, on=ON,
                      authored="2026-11-21T10:00:00Z")
    assert result.answers == {"patient.age-years": age}
    assert result.issues == ()
    assert _age_answer(result.response) == [{"valueInteger": age}]
    response = result.response
    assert (response["status"], response["questionnaire"], response["authored"]) == \
        ("in-progress", form.canonical, "2026-11-21T10:00:00Z")
    assert response["subject"] == {"reference": "Patient/p1",
                                   "identifier": {"system": "urn:mrn", "value": "123"},
                                   "display": "A. B."}
    assert "encounter" not in response
    assert fhir_models.validate(response) == []


def test_the_same_age_as_the_pipeline_gives(kb, form) -> None:
    """One age rule: an exam on that date from the same Patient records the same age."""
    exam = pipeline.exam_from_input(kb, {}, patient=PATIENT,
                                    now=dt.datetime(2026, 11, 21, 10, tzinfo=dt.timezone.utc))
    assert populate(form, PATIENT, on=ON).answers == \
        {"patient.age-years": exam.answers["patient.age-years"][0]}


def test_subject_and_encounter_given_explicitly(form) -> None:
    encounter = {"reference": "Encounter/e1"}
    result = populate(form, PATIENT, on=ON, subject={"reference": "Patient/ehr-9"},
                      encounter=encounter)
    assert result.response["subject"] == {"reference": "Patient/ehr-9"}
    assert result.response["encounter"] == encounter
    assert "authored" not in result.response  # pure: no clock read here


@pytest.mark.parametrize(("patient", "issue"), [
    ({"resourceType": "Patient", "id": "p1"}, NO_BIRTH_DATE),
    (None, NO_PATIENT),
    ({**PATIENT, "birthDate": "2027-01-01"}, "is after the exam date 2026-11-21"),
    ({**PATIENT, "birthDate": "1890-01-01"}, "gives an age of 136"),
    ({**PATIENT, "birthDate": "1986-02-30"}, "is not a FHIR date"),
])
def test_what_cannot_be_filled_is_a_warning_not_an_error(form, patient, issue: str) -> None:
    result = populate(form, patient, on=ON, subject={"reference": "Patient/p1"})
    assert result.answers == {}
    assert len(result.issues) == 1 and issue in result.issues[0]
    assert "item" not in result.response
    assert result.response["status"] == "in-progress"
    assert fhir_models.validate(result.response) == []
