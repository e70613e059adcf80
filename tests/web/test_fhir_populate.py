"""SDC Questionnaire $populate on the FHIR API, type and instance level: Parameters in,
Parameters out (an in-progress response with the age filled from birthDate on today's
date, and warnings as issues); bad Parameters are OperationOutcomes. Every answer must
validate under fhir.resources AND the independent validator.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.support import fhir_http, tablet
from tests.support.conformance import IndependentValidator, assert_conformant
from tests.support.fhir_http import refused

Q_URL = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam"
TYPE = "/fhir/Questionnaire/$populate"
INSTANCE = "/fhir/Questionnaire/posterior-thigh-exam/$populate"
SUBJECT = {"name": "subject", "valueReference": {"reference": "Patient/ehr-1"}}


@pytest.fixture()
def app(make_app):
    return make_app()


def _params(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(parts)}


def _context(name: str, **content: Any) -> dict[str, Any]:
    return {"name": "context", "part": [{"name": "name", "valueString": name},
                                        {"name": "content", **content}]}


def _born(years: int, *, days_later: int = 0) -> str:
    """The birthDate of someone ``years`` old today whose birthday is ``days_later``
    days from today (0: today is the birthday)."""
    today = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=days_later)
    try:
        return today.replace(year=today.year - years).isoformat()
    except ValueError:  # 29 February
        return (today - dt.timedelta(days=1)).replace(year=today.year - years).isoformat()


def _patient_resource(birth_date: str | None = "1986-03-14") -> dict[str, Any]:
    patient = {"resourceType": "Patient", "id": "ehr-1", "name": [{"family": "Silva"}]}
    return {**patient, "birthDate": birth_date} if birth_date else patient


def _populated(response: Any, validator: IndependentValidator) -> dict[str, Any]:
    body = fhir_http.ok(response)
    assert body["resourceType"] == "Parameters"
    assert_conformant(validator, body)
    for part in body["parameter"]:
        assert_conformant(validator, part["resource"])
    return {p["name"]: p["resource"] for p in body["parameter"]}


def _age(response: dict[str, Any]) -> list[dict[str, Any]] | None:
    for group in response.get("item", []):
        for item in group.get("item", []):
            if item["linkId"] == "patient.age-years":
                return item["answer"]
    return None


@pytest.mark.parametrize("questionnaire", [
    {"name": "questionnaire", "valueCanonical": Q_URL},
    {"name": "questionnaire", "valueCanonical": f"{Q_URL}|1.0.0"},
    {"name": "questionnaire",
     "valueReference": {"reference": "Questionnaire/posterior-thigh-exam"}},
    {"name": "questionnaire",
     "valueReference": {"reference": "http://localhost/fhir/Questionnaire/posterior-thigh-exam"}},
    {"name": "questionnaire", "resource": {"resourceType": "Questionnaire", "url": Q_URL,
                                           "status": "active"}},
])
def test_type_level_names_the_questionnaire_every_way(client, validator, questionnaire) -> None:
    out = _populated(client.post(TYPE, json=_params(
        questionnaire, SUBJECT, _context("patient", resource=_patient_resource(_born(40))))),
        validator)
    response = out["response"]
    assert (response["resourceType"], response["status"]) == \
        ("QuestionnaireResponse", "in-progress")
    assert response["questionnaire"] == f"{Q_URL}|1.0.0"
    assert response["subject"] == {"reference": "Patient/ehr-1"}
    assert _age(response) == [{"valueInteger": 40}]
    authored = dt.datetime.fromisoformat(response["authored"])
    assert abs(dt.datetime.now(dt.timezone.utc) - authored) < dt.timedelta(minutes=1)
    assert "issues" not in out


@pytest.mark.parametrize(("birth_date", "age"), [
    (_born(40), 40),                    # the 40th birthday is today
    (_born(40, days_later=1), 39),      # ... tomorrow: still 39
    (_born(40, days_later=-1), 40),     # ... was yesterday
])
def test_instance_level_age_on_todays_date(client, validator, birth_date: str,
                                           age: int) -> None:
    out = _populated(client.post(INSTANCE, json=_params(
        SUBJECT, _context("patient", resource=_patient_resource(birth_date)),
        _context("encounter", valueReference={"reference": "Encounter/e-7"}),
        {"name": "local", "valueBoolean": True})), validator)
    assert _age(out["response"]) == [{"valueInteger": age}]
    assert out["response"]["encounter"] == {"reference": "Encounter/e-7"}


def test_a_patient_stored_here_by_reference_or_as_the_subject(app, client, validator) -> None:
    stored = tablet.patient(app)  # born 1986-03-14
    today = dt.datetime.now(dt.timezone.utc).date()
    age = today.year - 1986 - ((today.month, today.day) < (3, 14))
    subject = {"name": "subject", "valueReference": {"reference": f"Patient/{stored.id}"}}
    by_context = _populated(client.post(INSTANCE, json=_params(
        SUBJECT, _context("patient", valueReference={"reference": f"Patient/{stored.id}"}))),
        validator)
    assert _age(by_context["response"]) == [{"valueInteger": age}]
    by_subject = _populated(client.post(INSTANCE, json=_params(subject)), validator)
    assert _age(by_subject["response"]) == [{"valueInteger": age}]
    assert by_subject["response"]["subject"] == {"reference": f"Patient/{stored.id}"}


@pytest.mark.parametrize(("patient", "issue"), [
    (_patient_resource(None), "has no birthDate"),
    (_patient_resource("2099-01-01"), "is after the exam date"),
    (_patient_resource("1880-01-01"), "the exam records ages up to 120"),
])
def test_what_cannot_be_filled_is_a_warning(client, validator, patient, issue: str) -> None:
    out = _populated(client.post(INSTANCE, json=_params(
        SUBJECT, _context("patient", resource=patient))), validator)
    assert _age(out["response"]) is None
    assert [i["severity"] for i in out["issues"]["issue"]] == ["warning"]
    assert issue in out["issues"]["issue"][0]["details"]["text"]


def test_an_unused_context_and_no_patient_are_warnings(client, validator) -> None:
    out = _populated(client.post(INSTANCE, json=_params(
        SUBJECT, _context("user", valueReference={"reference": "Practitioner/p"}))), validator)
    texts = [i["details"]["text"] for i in out["issues"]["issue"]]
    assert any("'user' was ignored" in t for t in texts)
    assert any("No Patient was given" in t for t in texts)


@pytest.mark.parametrize(("path", "body", "status", "text"), [
    (TYPE, _params(SUBJECT), 400, "'questionnaire' is required at type level"),
    (INSTANCE, _params(), 400, "'subject' (a valueReference) is required"),
    (INSTANCE, {"resourceType": "Patient"}, 400, "takes a Parameters resource"),
    (INSTANCE, [1, 2], 400, "takes a Parameters resource"),
    (INSTANCE, _params(SUBJECT, {"name": "identifier", "valueString": "x"}), 400,
     "Unknown parameter 'identifier'"),
    (INSTANCE, _params(SUBJECT, SUBJECT), 400, "may appear only once"),
    (INSTANCE, _params({"name": "subject", "valueString": "Patient/1"}), 400,
     "must carry a valueReference"),
    (INSTANCE, _params(SUBJECT, {"name": "local", "valueString": "yes"}), 400, "valueBoolean"),
    (TYPE, _params(SUBJECT, {"name": "questionnaire", "valueCanonical": "http://x.org/Q"}),
     422, "Only Questionnaires loaded on this server can be populated"),
    (TYPE, _params(SUBJECT, {"name": "questionnaire", "valueString": Q_URL}), 400,
     "needs a valueCanonical"),
    (TYPE, _params(SUBJECT, {"name": "questionnaire", "resource": {"resourceType": "Patient"}}),
     400, "must be a Questionnaire"),
    (INSTANCE, _params(SUBJECT, {"name": "questionnaire", "valueCanonical": f"{Q_URL}|9.9"}),
     422, "Only Questionnaires loaded"),
    ("/fhir/Questionnaire/nope/$populate", _params(SUBJECT), 404, "is not known"),
    (INSTANCE, _params(SUBJECT, {"name": "context", "part": [{"name": "name",
                                                              "valueString": "patient"}]}),
     400, "needs a 'name' (valueString) and a 'content'"),
    (INSTANCE, _params(SUBJECT, _context("patient", resource={"resourceType": "Patient",
                                                               "birthDate": "14/03/1986"})),
     400, "Date value string does not match"),
    (INSTANCE, _params(SUBJECT, _context("patient", valueReference={
        "reference": "Patient/5f8d7a3e-0000-4000-8000-000000000000"})), 422,
     "a Reference to a Patient stored on this server"),
    (INSTANCE, _params(SUBJECT, _context("encounter", resource={"resourceType": "Encounter"})),
     422, "an Encounter with an id"),
    (INSTANCE, _params({"name": "subject", "valueReference": {"reference": 5}}), 422,
     "not a valid FHIR Reference"),
])
def test_bad_parameters_are_operation_outcomes(client, validator, path: str, body: Any,
                                               status: int, text: str) -> None:
    refused(client.post(path, json=body), validator, status, text)


def test_a_get_or_a_non_json_body_is_refused(client, validator) -> None:
    refused(client.get(TYPE), validator, 405, "")
    refused(client.post(INSTANCE, data="x", content_type="text/plain"), validator, 415,
            "Send JSON")
