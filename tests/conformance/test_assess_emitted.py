"""Everything ``$assess`` emits validates under fhir.resources AND the independent
validator with zero errors, for every golden case: the Parameters, the collection
Bundle and each resource in it, plus the 422 OperationOutcome of a request without a
subject. Where a case states the expected assessment, the Bundle must carry it: a
Condition coded with our decision-support code for the top condition, and a draft,
proposed ServiceRequest for every required referral."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from plugin.core import responses
from plugin.record import pipeline
from plugin.core.datetimes import parse_aware
from tests.support.conformance import assert_conformant
from tests.support.bundles import references as _references

CASES = sorted((Path(__file__).resolve().parent.parent / "data" / "cases").glob("*.json"))
ASSESS = "/fhir/QuestionnaireResponse/$assess"
DECISION_SUPPORT = "http://posterior-thigh-exam.org/fhir/CodeSystem/decision-support"
PRIORITIES = ("stat", "urgent", "routine")


def _request(kb: Any, case: dict[str, Any]) -> dict[str, Any]:
    """Parameters: the case's answers as a completed QR authored and signed as the case
    says (the product's own plain -> QR path), and the case's Patient as the subject."""
    exam = pipeline.exam_from_input(kb, case["answers"], now=parse_aware(case["authored"]))
    qr = dict(responses.build(exam), author=case["author"])
    return {"resourceType": "Parameters", "parameter": [
        {"name": "questionnaire-response", "resource": qr},
        {"name": "patient", "resource": case["patient"]}]}


def _ds_codes(resource: dict[str, Any]) -> list[str]:
    return [c["code"] for c in resource["code"]["coding"] if c["system"] == DECISION_SUPPORT]


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_assessment_bundle_of_every_golden_case(client, kb, validator, case: Path) -> None:
    data = json.loads(case.read_text(encoding="utf-8"))
    response = client.post(ASSESS, json=_request(kb, data))
    assert response.status_code == 200, response.get_data(as_text=True)
    parameters = response.get_json()
    assert_conformant(validator, parameters)
    bundle = next(p["resource"] for p in parameters["parameter"] if p["name"] == "return")
    assert bundle["type"] == "collection"
    assert_conformant(validator, bundle)
    entries = bundle.get("entry", [])
    for entry in entries:
        assert_conformant(validator, entry["resource"])
    by_url = {e["fullUrl"]: e["resource"] for e in entries}
    conditions = [r for r in by_url.values() if r["resourceType"] == "Condition"]
    requests = [r for r in by_url.values() if r["resourceType"] == "ServiceRequest"]

    for condition in conditions:
        assert condition["verificationStatus"]["coding"][0]["code"] == "differential"
        assert len(_ds_codes(condition)) == 1
        for detail in (d for e in condition.get("evidence", []) for d in e["detail"]):
            assert by_url[detail["reference"]]["resourceType"] == "Observation"
    for request in requests:
        assert (request["status"], request["intent"]) == ("draft", "proposal")
        assert request["priority"] in PRIORITIES
        assert len(_ds_codes(request)) == 1
        for reason in request.get("reasonReference", []):
            assert by_url[reason["reference"]]["resourceType"] == reason["type"]
    internal = [r for r in _references(bundle) if r.startswith("urn:uuid:")]
    assert set(internal) <= set(by_url)  # every reference inside the Bundle resolves

    expected = data.get("assessment") or {}
    if expected.get("top_condition"):
        assert conditions, "no Condition for a case with a top condition"
        assert _ds_codes(conditions[0]) == [expected["top_condition"]]  # rank order
    elif "top_condition" in expected:  # null: nothing is supported, nothing is suggested
        assert conditions == []
    services = {_ds_codes(r)[0]: r for r in requests}
    for service in expected.get("referrals_required", []):
        assert service in services, (service, sorted(services))
    for service in expected.get("referrals_forbidden", []):
        assert service not in services, service
    if expected.get("urgency") == "emergency":
        assert {r["priority"] for r in requests} == {"stat"}


def test_the_refusal_without_a_subject_is_conformant(client, validator) -> None:
    case = json.loads(CASES[0].read_text(encoding="utf-8"))
    response = client.post(ASSESS, json=case["answers"])
    assert response.status_code == 422
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert_conformant(validator, outcome)


def test_the_decision_support_code_system_is_conformant(client, validator) -> None:
    response = client.get("/fhir/CodeSystem/decision-support")
    assert response.status_code == 200
    assert_conformant(validator, response.get_json())


def test_there_are_golden_cases_with_expectations() -> None:
    expected = [json.loads(p.read_text(encoding="utf-8")).get("assessment") for p in CASES]
    assert len(CASES) >= 25 and sum(1 for e in expected if e and e["top_condition"]) >= 20
