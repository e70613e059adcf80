"""The FHIR API as an integrator uses it: definitions, metadata, $extract, and errors."""
from __future__ import annotations

import json
from typing import Any

import pytest

from plugin import create_app

Q_URL = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam"
EXTRACT = "/fhir/QuestionnaireResponse/$extract"
ANSWERS = {"history.onset": "sudden", "history.pop": True, "slr.left.onset-angle": 40,
           "slr.left.response": "leg-pain-below-knee", "history.pain-location": ["sit-bone"]}


def _bundle(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    params = response.get_json()
    assert params["resourceType"] == "Parameters"
    return next(p["resource"] for p in params["parameter"] if p["name"] == "return")


def test_metadata_says_r4_and_lists_extract(client) -> None:
    cs = client.get("/fhir/metadata").get_json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in cs["rest"][0]["resource"]}
    assert set(resources) == {"Questionnaire", "CodeSystem", "QuestionnaireResponse"}
    assert resources["QuestionnaireResponse"]["operation"][0]["name"] == "extract"


def test_questionnaire_read_and_search(client) -> None:
    q = client.get("/fhir/Questionnaire/posterior-thigh-exam").get_json()
    assert q["url"] == Q_URL and q["version"] == "1.0.0"
    found = client.get(f"/fhir/Questionnaire?url={Q_URL}").get_json()
    assert found["type"] == "searchset" and found["total"] == 1
    assert found["entry"][0]["resource"]["id"] == "posterior-thigh-exam"
    assert client.get(f"/fhir/Questionnaire?url={Q_URL}|9.9").get_json()["total"] == 0


def test_code_system_read_and_search(client) -> None:
    ids = {e["resource"]["id"] for e in client.get("/fhir/CodeSystem").get_json()["entry"]}
    assert ids == {"exam-answers", "exam-tests"}
    cs = client.get("/fhir/CodeSystem/exam-tests").get_json()
    assert any(c["code"] == "slr.onset-angle" for c in cs["concept"])


def test_extract_plain_answers(client) -> None:
    bundle = _bundle(client.post(EXTRACT, json=ANSWERS))
    assert bundle["type"] == "transaction"
    obs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    angle = next(o for o in obs if o["identifier"][0]["value"].endswith("/slr.left.onset-angle"))
    assert angle["valueQuantity"] == {"value": 40, "unit": "°",
                                      "system": "http://unitsofmeasure.org", "code": "deg"}


def test_extract_sdc_parameters_with_a_response(client) -> None:
    first = _bundle(client.post(EXTRACT, json=ANSWERS))
    qr = first["entry"][0]["resource"]
    body = {"resourceType": "Parameters",
            "parameter": [{"name": "questionnaire-response", "resource": qr}]}
    again = _bundle(client.post(EXTRACT, json=body, content_type="application/fhir+json"))
    # the same record sent back gives the same identifiers: a re-post duplicates nothing
    ids = lambda b: sorted(json.dumps(e["request"]) for e in b["entry"]  # noqa: E731
                           if e["resource"]["resourceType"] != "Provenance")
    assert ids(again) == ids(first)


def _qr(**changes: Any) -> dict[str, Any]:
    qr = {"resourceType": "QuestionnaireResponse", "questionnaire": f"{Q_URL}|1.0.0",
          "status": "completed", "item": [{"linkId": "slr", "item": [{"linkId": "slr.left", "item": [
              {"linkId": "slr.left.onset-angle", "answer": [{"valueInteger": 40}]}]}]}]}
    qr.update(changes)
    return qr


def _params(resource: Any) -> dict[str, Any]:
    return {"resourceType": "Parameters",
            "parameter": [{"name": "questionnaire-response", "resource": resource}]}


BAD = [
    # label, body (bytes or JSON), content type, status, text in the outcome, linkId named
    ("malformed JSON", b'{"slr.left.onset-angle": ', "application/json", 400, "not valid JSON", None),
    ("not FHIR JSON", b"plain text", "text/plain", 415, "Send JSON", None),
    ("wrong resourceType", {"resourceType": "Patient"}, "application/fhir+json", 400,
     "got 'Patient'", None),
    ("Parameters without a response", {"resourceType": "Parameters", "parameter": []},
     "application/fhir+json", 400, "questionnaire-response", None),
    ("unknown Questionnaire", _params(_qr(questionnaire="http://example.org/Questionnaire/x")),
     "application/fhir+json", 404, "Unknown Questionnaire", None),
    ("in-progress response", _params(_qr(status="in-progress")), "application/fhir+json", 422,
     "must be completed", None),
    ("angle out of range", {"slr.left.onset-angle": 95}, "application/json", 422,
     "between 0 and 90", "slr.left.onset-angle"),
    ("unknown linkId", {"slr.left.angle": 40}, "application/json", 422, "Unknown linkId",
     "slr.left.angle"),
    ("answer to a disabled item", {"history.onset": "gradual", "history.pop": True},
     "application/json", 422, "applies only when history.onset = sudden", "history.pop"),
    ("wrong value type in a QR", _params(_qr(item=[{"linkId": "pain", "item": [
        {"linkId": "pain.current", "answer": [{"valueString": "5"}]}]}])),
     "application/fhir+json", 422, "Expected valueInteger", "pain.current"),
]


@pytest.mark.parametrize(("label", "body", "ctype", "status", "text", "link_id"), BAD,
                         ids=[b[0] for b in BAD])
def test_bad_input_gets_an_operation_outcome(client, label, body, ctype, status, text,
                                             link_id) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = client.post(EXTRACT, data=data, content_type=ctype)
    assert response.status_code == status, response.get_data(as_text=True)
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    texts = " | ".join(i["details"]["text"] for i in outcome["issue"])
    assert text in texts
    if link_id:
        assert any(i["details"]["text"].startswith(f"{link_id}:")
                   and f"linkId='{link_id}'" in i["expression"][0] for i in outcome["issue"])


def test_every_error_is_reported_at_once(client) -> None:
    response = client.post(EXTRACT, json={"slr.left.onset-angle": -5, "pain.current": 11,
                                          "history.onset": "slow", "red-flags.fever": "yes"})
    named = {i["details"]["text"].split(":")[0] for i in response.get_json()["issue"]}
    assert named == {"slr.left.onset-angle", "pain.current", "history.onset", "red-flags.fever"}


def test_oversized_body_is_refused_with_an_outcome() -> None:
    client = create_app({"TESTING": True, "MAX_CONTENT_LENGTH": 512}).test_client()
    response = client.post(EXTRACT, data=json.dumps({"x": "y" * 1000}),
                           content_type="application/json")
    assert response.status_code == 413
    assert "larger than this server accepts (512 bytes)" in \
        response.get_json()["issue"][0]["details"]["text"]


@pytest.mark.parametrize("path", ["/fhir/Nothing", "/fhir/Questionnaire/nope",
                                  "/fhir/CodeSystem/nope"])
def test_unknown_things_are_404_outcomes(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_wrong_method_is_405_outcome(client) -> None:
    response = client.get(EXTRACT)
    assert response.status_code == 405
    assert response.get_json()["issue"][0]["code"] == "not-supported"


def test_unsupported_search_parameter_is_refused(client) -> None:
    response = client.get("/fhir/Questionnaire?name=x")
    assert response.status_code == 400
    assert "Unsupported search parameter" in response.get_json()["issue"][0]["details"]["text"]
