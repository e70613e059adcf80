"""Every resource the product emits validates under fhir.resources AND the independent
validator with zero errors: definitions, CapabilityStatement, search Bundles, every
extraction Bundle of the golden cases (and each resource inside), and OperationOutcomes
from the error paths."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.conformance import assert_conformant

CASES = sorted((Path(__file__).resolve().parent.parent / "data" / "cases").glob("*.json"))
FHIR_JSON = "application/fhir+json"


def _get(client: Any, url: str) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_definitions_and_capability_statement(client, validator) -> None:
    resources = [_get(client, "/fhir/metadata"), _get(client, "/fhir/Questionnaire"),
                 _get(client, "/fhir/CodeSystem"), _get(client, "/fhir/StructureDefinition")]
    for search in resources[1:]:
        resources += [e["resource"] for e in search["entry"]]
    kinds = {r["resourceType"] for r in resources}
    assert {"CapabilityStatement", "Bundle", "Questionnaire", "CodeSystem",
            "StructureDefinition"} <= kinds
    for resource in resources:
        assert_conformant(validator, resource)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_extraction_bundle_of_every_golden_case(client, validator, case: Path) -> None:
    data = json.loads(case.read_text(encoding="utf-8"))
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "questionnaire-response", "resource": _as_response(client, data)},
        {"name": "patient", "resource": data["patient"]}]}
    response = client.post("/fhir/QuestionnaireResponse/$extract", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    parameters = response.get_json()
    assert_conformant(validator, parameters)
    bundle = next(p["resource"] for p in parameters["parameter"] if p["name"] == "return")
    assert_conformant(validator, bundle)
    kinds = set()
    for entry in bundle["entry"]:
        assert_conformant(validator, entry["resource"])
        kinds.add(entry["resource"]["resourceType"])
    assert {"QuestionnaireResponse", "Observation", "Provenance", "Device"} <= kinds
    expected = data.get("assessment") or {}
    if expected.get("top_condition"):  # the assessment travels in the same Bundle
        assert "Condition" in kinds
    if expected.get("referrals_required"):
        assert "ServiceRequest" in kinds


def _as_response(client: Any, case: dict[str, Any]) -> dict[str, Any]:
    """The case's answers as a completed QR, built by the product itself (plain → QR)."""
    plain = client.post("/fhir/QuestionnaireResponse/$extract", json=case["answers"])
    assert plain.status_code == 200, plain.get_data(as_text=True)
    bundle = next(p["resource"] for p in plain.get_json()["parameter"] if p["name"] == "return")
    qr = next(e["resource"] for e in bundle["entry"]
              if e["resource"]["resourceType"] == "QuestionnaireResponse")
    qr = dict(qr, authored=case["authored"], author=case["author"],
              subject={"reference": f"Patient/{case['patient']['id']}"})
    qr.pop("identifier", None)  # a new record: the product assigns its own identifier
    return qr


BAD_REQUESTS = [
    ("malformed JSON", b"{not json", FHIR_JSON),
    ("wrong resourceType", json.dumps({"resourceType": "Patient"}).encode(), FHIR_JSON),
    ("invalid answers", json.dumps({"slr.left.onset-angle": 95, "nope": 1}).encode(), FHIR_JSON),
    ("unknown Questionnaire", json.dumps({
        "resourceType": "QuestionnaireResponse", "status": "completed",
        "questionnaire": "http://example.org/Questionnaire/other"}).encode(), FHIR_JSON),
    ("wrong content type", b"hello", "text/plain"),
]


@pytest.mark.parametrize(("label", "body", "content_type"), BAD_REQUESTS,
                         ids=[b[0] for b in BAD_REQUESTS])
def test_operation_outcomes(client, validator, label: str, body: bytes,
                            content_type: str) -> None:
    response = client.post("/fhir/QuestionnaireResponse/$extract", data=body,
                           content_type=content_type)
    assert 400 <= response.status_code < 500, label
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert_conformant(validator, outcome)


def test_unknown_route_is_a_conformant_outcome(client, validator) -> None:
    response = client.get("/fhir/Nothing/here")
    assert response.status_code == 404
    assert_conformant(validator, response.get_json())


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 5  # the parametrized test above must not run on nothing
