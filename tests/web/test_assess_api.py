"""``POST /fhir/QuestionnaireResponse/$assess`` as an integrator uses it, and the
assessment's place in ``$extract``.

$assess takes what $extract takes (Parameters with 'questionnaire-response' and an
optional 'patient', a bare QuestionnaireResponse, or plain answers) and answers
Parameters with 'return': a ``collection`` Bundle of the suggested Conditions, the draft
ServiceRequests and the Observations / QuestionnaireResponse they cite. Conditions and
ServiceRequests need a subject: without one it is a 422. Bad input is an
OperationOutcome with a 4xx status, never a 500.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.core import responses
from plugin.record import pipeline
from plugin.core.datetimes import parse_aware
from plugin.core.fhir_models import validate
from tests.support import fhir_http
from tests.support.bundles import by_url as _by_url, of_type as _of_type, references as _references
from tests.support.signin import signed_in

ASSESS = "/fhir/QuestionnaireResponse/$assess"
EXTRACT = "/fhir/QuestionnaireResponse/$extract"
FHIR_JSON = fhir_http.FHIR_JSON
Q_URL = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam"
DECISION_SUPPORT = "http://posterior-thigh-exam.org/fhir/CodeSystem/decision-support"
LOINC = "http://loinc.org"
CASES = sorted((Path(__file__).resolve().parents[1] / "data" / "cases").glob("*.json"))
MR_THIGH = {"left": "26236-0", "right": "26237-8"}


def _case(name: str) -> dict[str, Any]:
    return json.loads((CASES[0].parent / f"{name}.json").read_text(encoding="utf-8"))


def _params(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(parts)}


def _inputs(response: Any, patient: Any = None) -> dict[str, Any]:
    parts = [{"name": "questionnaire-response", "resource": response}]
    if patient is not None:
        parts.append({"name": "patient", "resource": patient})
    return _params(*parts)


def _case_qr(kb: Any, case: dict[str, Any], *, subject: bool = False) -> dict[str, Any]:
    """The case's answers as a completed QR authored when the case says (so the age and
    every date are fixed), built by the product's own plain -> QR path."""
    exam = pipeline.exam_from_input(kb, case["answers"],
                                    patient=case["patient"] if subject else None,
                                    now=parse_aware(case["authored"]))
    return responses.build(exam)


_ok = fhir_http.ok


def _returned(response: Any) -> dict[str, Any]:
    return fhir_http.returned(response, alone=True)


def _assess_case(client: Any, kb: Any, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    case = _case(name)
    return case, _returned(client.post(ASSESS, json=_inputs(_case_qr(kb, case),
                                                              case["patient"])))


def _ds_code(resource: dict[str, Any]) -> str:
    codes = [c["code"] for c in resource["code"]["coding"] if c["system"] == DECISION_SUPPORT]
    assert len(codes) == 1, resource["code"]
    return codes[0]


# --- what $assess returns ----------------------------------------------------------------

def test_red_flag_case_gives_stat_draft_proposals(client, kb) -> None:
    case, bundle = _assess_case(client, kb, "ces-unilateral-sciatica")
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "collection")
    assert all(set(e) == {"fullUrl", "resource"} for e in bundle["entry"])
    requests = _of_type(bundle, "ServiceRequest")
    assert [_ds_code(r) for r in requests] == ["emergency-department", "mri-lumbar-spine"]
    for request in requests:
        assert (request["status"], request["intent"], request["priority"]) == \
            ("draft", "proposal", "stat")
        assert request["subject"]["reference"] == f"Patient/{case['patient']['id']}"
        assert request["authoredOn"] == case["authored"]
        assert "not a diagnosis or an order" in request["note"][0]["text"]
    mri = requests[1]
    assert {"system": LOINC, "code": "24968-0"}.items() <= mri["code"]["coding"][0].items()
    condition, = _of_type(bundle, "Condition")
    assert _ds_code(condition) == "lumbar-radiculopathy"
    assert condition["verificationStatus"]["coding"][0]["code"] == "differential"
    assert condition["clinicalStatus"]["coding"][0]["code"] == "active"


def test_the_same_request_twice_gives_the_same_bytes(client, kb) -> None:
    body = json.dumps(_inputs(_case_qr(kb, _case("sprinter-proximal-avulsion")),
                              _case("sprinter-proximal-avulsion")["patient"]))
    first = client.post(ASSESS, data=body, content_type=FHIR_JSON)
    again = client.post(ASSESS, data=body, content_type="application/json")
    assert first.status_code == again.status_code == 200
    assert first.get_data() == again.get_data()


def test_conditions_cite_their_observations_and_every_reference_resolves(client, kb) -> None:
    case, bundle = _assess_case(client, kb, "hamstring-syndrome-recurrent-tears")
    by_url = _by_url(bundle)
    conditions = _of_type(bundle, "Condition")
    assert conditions
    for condition in conditions:
        detail = [d for e in condition["evidence"] for d in e["detail"]]
        assert detail
        for reference in detail:
            assert reference["type"] == "Observation"
            observation = by_url[reference["reference"]]
            assert observation["resourceType"] == "Observation"
            assert observation["subject"]["reference"] == f"Patient/{case['patient']['id']}"
    internal = [r for r in _references(bundle) if r.startswith("urn:uuid:")]
    assert internal and set(internal) <= set(by_url)
    # the Observations say where they came from: the response is in the Bundle too
    qr, = _of_type(bundle, "QuestionnaireResponse")
    assert qr["subject"]["reference"] == f"Patient/{case['patient']['id']}"


def test_service_request_reasons_resolve_to_conditions_and_observations(client, kb) -> None:
    _, bundle = _assess_case(client, kb, "pht-runner-16-weeks-loading")
    by_url = _by_url(bundle)
    condition_urls = {url for url, r in by_url.items() if r["resourceType"] == "Condition"}
    mri = next(r for r in _of_type(bundle, "ServiceRequest")
               if _ds_code(r) == "mri-pelvis-hamstring")
    kinds = set()
    for reason in mri["reasonReference"]:
        target = by_url[reason["reference"]]
        assert target["resourceType"] == reason["type"]
        kinds.add(reason["type"])
    assert kinds == {"Condition", "Observation"}
    # the tendinopathy it rests on is the Condition it cites
    cited = [by_url[r["reference"]] for r in mri["reasonReference"] if r["type"] == "Condition"]
    assert [_ds_code(c) for c in cited] == ["proximal-hamstring-tendinopathy"]
    assert {r["reference"] for r in mri["reasonReference"]} & condition_urls


def test_a_red_flag_referral_cites_the_observation_that_raised_the_flag(client, kb) -> None:
    _, bundle = _assess_case(client, kb, "ces-unilateral-sciatica")
    by_url = _by_url(bundle)
    emergency = next(r for r in _of_type(bundle, "ServiceRequest")
                     if _ds_code(r) == "emergency-department")
    cited = [by_url[r["reference"]] for r in emergency.get("reasonReference", [])]
    assert any(o["resourceType"] == "Observation"
               and o["identifier"][0]["value"].endswith("/red-flags.bladder-dysfunction")
               for o in cited)


@pytest.mark.parametrize("name", ["waterskier-avulsion-palpable-gap",
                                  "sprinter-proximal-avulsion"])
def test_the_thigh_mri_is_coded_for_the_affected_side(client, kb, name: str) -> None:
    case, bundle = _assess_case(client, kb, name)
    side = case["answers"]["history.affected-side"]
    other = "left" if side == "right" else "right"
    mri = next(r for r in _of_type(bundle, "ServiceRequest")
               if _ds_code(r) == "mri-pelvis-hamstring")
    loinc = [c["code"] for c in mri["code"]["coding"] if c["system"] == LOINC]
    assert loinc == [MR_THIGH[side]], (side, loinc)
    assert MR_THIGH[other] not in loinc and "24702-3" not in loinc  # not the unsided code
    assert mri["priority"] == "urgent"


def test_the_waterskier_is_a_right_sided_avulsion() -> None:
    """The case the side test leans on: right leg (so MR Thigh - right, 26237-8)."""
    case = _case("waterskier-avulsion-palpable-gap")
    assert case["answers"]["history.affected-side"] == "right"
    assert case["assessment"]["top_condition"] == "proximal-hamstring-avulsion"


def test_the_decision_support_code_system_holds_every_code_emitted(client, kb) -> None:
    code_system = _ok(client.get("/fhir/CodeSystem/decision-support"))
    assert validate(code_system) == []
    assert (code_system["resourceType"], code_system["url"]) == ("CodeSystem", DECISION_SUPPORT)
    assert code_system["content"] == "complete"
    assert code_system["count"] == len(code_system["concept"])
    kinds = {c["code"]: {p["valueCode"] for p in c["property"] if p["code"] == "kind"}
             for c in code_system["concept"]}
    used_conditions, used_services = set(), set()
    for path in CASES:
        case = json.loads(path.read_text(encoding="utf-8"))
        bundle = _returned(client.post(ASSESS, json=_inputs(case["answers"], case["patient"])))
        for resource in _of_type(bundle, "Condition"):
            coding = next(c for c in resource["code"]["coding"]
                          if c["system"] == DECISION_SUPPORT)
            used_conditions.add(coding["code"])
            concept = next(c for c in code_system["concept"] if c["code"] == coding["code"])
            assert coding["display"] == concept["display"]
        used_services |= {_ds_code(r) for r in _of_type(bundle, "ServiceRequest")}
    assert len(used_conditions) >= 8 and len(used_services) >= 5
    for code in used_conditions:
        assert "condition" in kinds.get(code, set()), code
    for code in used_services:
        assert "service" in kinds.get(code, set()), code
    # and it is listed with the other CodeSystems
    search = _ok(client.get(f"/fhir/CodeSystem?url={DECISION_SUPPORT}"))
    assert [e["resource"]["id"] for e in search["entry"]] == ["decision-support"]


# --- the inputs $assess takes ------------------------------------------------------------

def test_plain_answers_with_a_patient_parameter(client) -> None:
    case = _case("ces-unilateral-sciatica")
    bundle = _returned(client.post(ASSESS, json=_inputs(case["answers"], case["patient"])))
    assert {_ds_code(r) for r in _of_type(bundle, "ServiceRequest")} == \
        {"emergency-department", "mri-lumbar-spine"}


def test_a_bare_response_with_a_subject(client, kb) -> None:
    qr = _case_qr(kb, _case("ces-unilateral-sciatica"), subject=True)
    bundle = _returned(client.post(ASSESS, json=qr))
    assert {r["subject"]["reference"] for r in _of_type(bundle, "Condition")} == \
        {"Patient/ces-042"}


def test_a_loaded_questionnaire_parameter_is_accepted(client, kb) -> None:
    case = _case("ces-unilateral-sciatica")
    body = _inputs(_case_qr(kb, case), case["patient"])
    body["parameter"].append({"name": "questionnaire", "resource": {
        "resourceType": "Questionnaire", "url": Q_URL, "status": "active"}})
    assert _of_type(_returned(client.post(ASSESS, json=body)), "Condition")


@pytest.mark.parametrize("body", [
    pytest.param(_case("ces-unilateral-sciatica")["answers"], id="plain answers"),
    pytest.param(_inputs(_case("ces-unilateral-sciatica")["answers"]), id="Parameters"),
    pytest.param({"resourceType": "QuestionnaireResponse", "questionnaire": Q_URL,
                  "status": "completed", "item": [{"linkId": "pain", "item": [
                      {"linkId": "pain.current", "answer": [{"valueInteger": 4}]}]}]},
                 id="bare QR"),
])
def test_without_a_subject_it_is_a_422(client, body: dict[str, Any]) -> None:
    response = client.post(ASSESS, json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    outcome = response.get_json()
    assert validate(outcome) == []
    issue, = outcome["issue"]
    assert (issue["severity"], issue["code"]) == ("error", "required")
    assert issue["expression"] == ["QuestionnaireResponse.subject"]
    assert issue["details"]["text"] == pipeline.NO_SUBJECT


BAD = [
    # label, body (bytes or JSON), content type, status, text in the outcome, linkId named
    ("malformed JSON", b'{"slr.left.onset-angle": ', "application/json", 400,
     "not valid JSON", None),
    ("empty body", b"", "application/json", 400, "body is empty", None),
    ("JSON null", b"null", "application/json", 400, "JSON null", None),
    ("deeper than the parser goes", b"[" * 1500 + b"]" * 1500, "application/json", 400,
     "deeper than 64 levels", None),
    ("text/plain", b"slr.left.onset-angle=40", "text/plain", 415, "Send JSON", None),
    ("no content type", b"{}", None, 415, "without Content-Type", None),
    ("wrong resourceType", {"resourceType": "Patient"}, FHIR_JSON, 400, "got 'Patient'", None),
    ("not a JSON object", [1, 2], "application/json", 422, "Expected a JSON object", None),
    ("Parameters without a response", _params(), FHIR_JSON, 400,
     "must contain 'questionnaire-response'", None),
    ("unknown parameter", _params({"name": "questionnaire-response", "resource": {}},
                                  {"name": "subject", "resource": {}}), FHIR_JSON, 400,
     "Unknown parameter 'subject'", None),
    ("repeated patient", _params({"name": "questionnaire-response", "resource": {}},
                                 {"name": "patient", "resource": {"resourceType": "Patient"}},
                                 {"name": "patient", "resource": {"resourceType": "Patient"}}),
     FHIR_JSON, 400, "only once", None),
    ("patient part that is no Patient", _inputs({}, {"resourceType": "Practitioner"}),
     FHIR_JSON, 400, "Expected a FHIR Patient", None),
    ("QR naming an unknown Questionnaire", {"resourceType": "QuestionnaireResponse",
                                            "status": "completed",
                                            "questionnaire": "http://example.org/Q/x"},
     FHIR_JSON, 422, "Unknown Questionnaire", None),
    ("SLR angle out of range", _inputs({"slr.left.onset-angle": 95},
                                       {"resourceType": "Patient", "id": "p"}),
     FHIR_JSON, 422, "between 0 and 90", "slr.left.onset-angle"),
    ("unknown linkId", {"slr.left.angle": 40}, "application/json", 422, "Unknown linkId",
     "slr.left.angle"),
]


@pytest.mark.parametrize(("label", "body", "ctype", "status", "text", "link_id"), BAD,
                         ids=[b[0] for b in BAD])
def test_bad_input_gets_an_operation_outcome(client, label, body, ctype, status, text,
                                             link_id) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = client.post(ASSESS, data=data, content_type=ctype)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert validate(outcome) == []
    assert all(i["severity"] == "error" and i["details"]["text"] for i in outcome["issue"])
    assert text in " | ".join(i["details"]["text"] for i in outcome["issue"])
    if link_id:
        assert any(i["details"]["text"].startswith(f"{link_id}: ") for i in outcome["issue"])


def test_only_post(client) -> None:
    response = client.get(ASSESS)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert response.get_json()["resourceType"] == "OperationOutcome"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                              max_size=3),
    max_leaves=12)
LINK_IDS = ["history.affected-side", "red-flags.bladder-dysfunction", "slr.left.onset-angle",
            "palpation.defect.right", "patient.age-years", "pain.current"]
PATIENTS = st.just({"resourceType": "Patient", "id": "p-1", "birthDate": "1980-01-01"}) \
    | st.fixed_dictionaries({"resourceType": st.just("Patient"),
                             "birthDate": JSON_VALUES | st.text(max_size=12)}) | JSON_VALUES


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers=st.dictionaries(st.sampled_from(LINK_IDS), JSON_VALUES | st.booleans(),
                               max_size=4),
       patient=PATIENTS, wrap=st.booleans())
def test_no_input_ever_yields_a_500(app, answers: Any, patient: Any, wrap: bool) -> None:
    body = _inputs(answers, patient) if wrap else answers
    response = signed_in(app).post(ASSESS, data=json.dumps(body),
                                      content_type="application/json")
    assert response.status_code in (200, 400, 422), response.get_data(as_text=True)
    assert response.get_json()["resourceType"] == \
        ("Parameters" if response.status_code == 200 else "OperationOutcome")


# --- the assessment in $extract ----------------------------------------------------------

def test_extract_with_a_patient_carries_the_same_conditions_and_requests(client, kb) -> None:
    case = _case("waterskier-avulsion-palpable-gap")
    body = _inputs(_case_qr(kb, case), case["patient"])
    transaction = _returned(client.post(EXTRACT, json=body))
    assessed = _returned(client.post(ASSESS, json=body))
    assert transaction["type"] == "transaction"
    suggested = [e for e in transaction["entry"]
                 if e["resource"]["resourceType"] in ("Condition", "ServiceRequest")]
    assert {_ds_code(e["resource"]) for e in suggested} >= \
        {"proximal-hamstring-avulsion", "urgent-orthopaedic-surgeon", "mri-pelvis-hamstring"}
    for entry in suggested:  # conditional creates on the plugin's own identifiers
        identifier = entry["resource"]["identifier"][0]
        assert entry["request"] == {
            "method": "POST", "url": entry["resource"]["resourceType"],
            "ifNoneExist": f"identifier={identifier['system']}|{identifier['value']}"}
    # $assess is exactly that part of the record (and what it cites), nothing re-made
    in_record = {e["fullUrl"]: e["resource"] for e in transaction["entry"]}
    for entry in assessed["entry"]:
        assert in_record[entry["fullUrl"]] == entry["resource"]
    assert [e["fullUrl"] for e in suggested] == \
        [e["fullUrl"] for e in assessed["entry"]
         if e["resource"]["resourceType"] in ("Condition", "ServiceRequest")]
    # the Provenance of the record names them as targets
    provenance, = _of_type(transaction, "Provenance")
    targets = {t["reference"] for t in provenance["target"]}
    assert {e["fullUrl"] for e in suggested} <= targets


def test_extract_without_a_subject_says_the_assessment_is_not_included(client) -> None:
    parameters = _ok(client.post(EXTRACT, json=_case("ces-unilateral-sciatica")["answers"]))
    by_name = {p["name"]: p["resource"] for p in parameters["parameter"]}
    assert set(by_name) == {"return", "issues"}
    kinds = {e["resource"]["resourceType"] for e in by_name["return"]["entry"]}
    assert "Observation" in kinds
    assert not kinds & {"Condition", "ServiceRequest"}
    issue, = by_name["issues"]["issue"]
    assert issue["severity"] == "information"
    assert issue["details"]["text"] == pipeline.NO_SUBJECT
    assert "assessment is not in the Bundle" in issue["details"]["text"]


def test_extract_with_a_subject_has_no_such_issue(client) -> None:
    case = _case("ces-unilateral-sciatica")
    parameters = _ok(client.post(EXTRACT, json=_inputs(case["answers"], case["patient"])))
    assert [p["name"] for p in parameters["parameter"]] == ["return"]
    kinds = [e["resource"]["resourceType"] for e in parameters["parameter"][0]["resource"]["entry"]]
    assert kinds.count("Condition") == 1 and kinds.count("ServiceRequest") == 2
