"""$extract of a completed outcome measure: the server scores it and emits one survey
Observation per score, whatever score the client sent; a broken response is refused."""
from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.core.fhir_models import validate
from tests.support import fhir_http
from tests.support.bundles import of_type
from tests.support.prom_cases import CASES, OM, lefs, psfs, start_back

EXTRACT = "/fhir/QuestionnaireResponse/$extract"
LOINC = "http://loinc.org"
SURVEY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _extract(client, response: dict[str, Any]) -> dict[str, Any]:
    return fhir_http.returned(client.post(EXTRACT, json=response,
                                          content_type=fhir_http.FHIR_JSON))


def _by_code(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["code"]["coding"][0]["code"]: o for o in of_type(bundle, "Observation")}


def _common(bundle: dict[str, Any]) -> None:
    qr_entry, *_ = bundle["entry"]
    assert bundle["type"] == "transaction" and validate(bundle) == []
    for entry in bundle["entry"]:
        assert entry["request"]["method"] == "POST"
        assert entry["request"]["ifNoneExist"].startswith("identifier=")
    for observation in of_type(bundle, "Observation"):
        assert observation["category"][0]["coding"][0] == {
            "system": SURVEY, "code": "survey", "display": "Survey"}
        assert observation["derivedFrom"] == [{"reference": qr_entry["fullUrl"],
                                               "type": "QuestionnaireResponse"}]
        assert observation["subject"] == {"reference": "Patient/p1"}
        assert observation["effectiveDateTime"] == "2026-12-06T09:00:00Z"
        assert observation["status"] == "final"


def test_lefs_gives_its_total(client) -> None:
    bundle = _extract(client, lefs({n: n % 5 for n in range(1, 21)}))
    _common(bundle)
    (qr,) = of_type(bundle, "QuestionnaireResponse")
    assert qr["item"][-1]["answer"] == [{"valueInteger": 40}]
    total = _by_code(bundle)["lefs-total"]
    assert total["code"]["coding"][0]["system"] == OM
    assert total["valueInteger"] == 40 and "note" not in total


def test_psfs_gives_its_mean_as_a_quantity(client) -> None:
    bundle = _extract(client, psfs([3, 5, 9]))
    _common(bundle)
    mean = _by_code(bundle)["psfs-mean"]
    assert mean["valueQuantity"] == {"value": 5.67, "unit": "score",
                                     "system": "http://unitsofmeasure.org", "code": "{score}"}


def test_psfs_whole_mean_stays_a_quantity(client) -> None:
    assert _by_code(_extract(client, psfs([10] * 5)))["psfs-mean"]["valueQuantity"]["value"] == 10


def test_start_back_total_in_loinc_and_risk_band_with_its_meaning(client) -> None:
    bundle = _extract(client, start_back({1, 2, 5, 6, 7}, "very-much"))
    _common(bundle)
    found = _by_code(bundle)
    # every score under its LOINC code first (receivers trend by LOINC); the subscore and
    # the risk level keep the project's code beside it (earlier records used it alone)
    assert set(found) == {"91351-7", "91350-9", "91352-5"}
    assert found["91351-7"]["code"]["coding"] == [
        {"system": LOINC, "code": "91351-7", "display": "Total score [STarT Back]"}]
    assert found["91351-7"]["valueInteger"] == 6
    assert found["91350-9"]["code"]["coding"] == [
        {"system": LOINC, "code": "91350-9", "display": "Distress subscore [STarT Back]"},
        {"system": OM, "code": "sbst-psychosocial",
         "display": "STarT Back psychosocial subscale score"}]
    assert found["91350-9"]["valueInteger"] == 4
    assert [c["code"] for c in found["91352-5"]["code"]["coding"]] == ["91352-5", "sbst-risk"]
    # the risk level is LOINC's answer (LL3578-3): High LA9193-9
    assert found["91352-5"]["valueCodeableConcept"] == {"coding": [
        {"system": LOINC, "code": "LA9193-9", "display": "High"}]}
    assert found["91352-5"]["note"] == [{"text": "STarT Back: high risk"}]


def test_an_unscorable_response_gives_no_score_observation(client) -> None:
    body = fhir_http.ok(client.post(EXTRACT, json=lefs({n: 4 for n in range(1, 20)}),
                                    content_type=fhir_http.FHIR_JSON))
    returned, issues = body["parameter"]
    assert issues["name"] == "issues" and validate(issues["resource"]) == []
    assert "too few answers to compute any score" in \
        issues["resource"]["issue"][0]["details"]["text"]
    bundle = returned["resource"]
    assert of_type(bundle, "Observation") == []
    (qr,) = of_type(bundle, "QuestionnaireResponse")
    assert all(i["linkId"] != "lefs-total" for i in qr["item"])


def test_a_client_sent_wrong_score_is_overwritten(client) -> None:
    response = lefs({n: 4 for n in range(1, 21)})
    response["item"].append({"linkId": "lefs-total", "answer": [{"valueInteger": 3}]})
    bundle = _extract(client, response)
    assert _by_code(bundle)["lefs-total"]["valueInteger"] == 80
    (qr,) = of_type(bundle, "QuestionnaireResponse")
    assert [i["answer"] for i in qr["item"] if i["linkId"] == "lefs-total"] == [
        [{"valueInteger": 80}]]


def test_the_same_response_gives_the_same_bundle(client) -> None:
    response = start_back(set(), "not-at-all")
    assert _extract(client, response) == _extract(client, copy.deepcopy(response))


def _unknown_item(r):
    r["item"].append({"linkId": "lefs-item-99", "answer": [{"valueInteger": 1}]})


def _unknown_code(r):
    r["item"][0]["answer"][0]["valueCoding"]["code"] = "lefs-7"


def _not_fhir(r):
    r["status"] = 7


def _in_progress(r):
    r["status"] = "in-progress"


def _wrong_type(r):
    r["item"][0]["answer"] = [{"valueString": "4"}]


def _two_answers(r):
    r["item"][0]["answer"].append(dict(r["item"][0]["answer"][0]))


def _nested(r):
    r["item"][0]["item"] = [{"linkId": "x", "answer": [{"valueInteger": 1}]}]


@pytest.mark.parametrize(("change", "status", "says"), [
    (_unknown_item, 422, "lefs-item-99: not an item of lefs"),
    (_unknown_code, 422, "lefs-item-1: 'lefs-7' is not one of its answer options"),
    (_not_fhir, 400, "not valid FHIR R4"),
    (_in_progress, 422, "Only a completed response is extracted"),
    (_wrong_type, 422, "lefs-item-1: needs valueCoding (a choice item)"),
    (_two_answers, 422, "lefs-item-1: has several answers; one is allowed"),
    (_nested, 422, "lefs-item-1: has nested items"),
])
def test_a_broken_response_is_refused_with_an_operation_outcome(client, change, status,
                                                                 says) -> None:
    response = lefs({n: 2 for n in range(1, 21)})
    change(response)
    answer = client.post(EXTRACT, json=response, content_type=fhir_http.FHIR_JSON)
    assert answer.status_code == status
    body = answer.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert says in body["issue"][0]["details"]["text"]
    assert validate(body) == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_hand_checked_case_extracts_valid_fhir(client, name) -> None:
    for _, response, expected in CASES[name]:
        bundle = _extract(client, response)
        assert validate(bundle) == []
        assert len(of_type(bundle, "Observation")) == sum(v is not None for v in expected.values())


# --- $populate of an outcome measure ---------------------------------------------------

SUBJECT = {"name": "subject", "valueReference": {"reference": "Patient/p1"}}
LEFS_URL = "http://posterior-thigh-exam.org/fhir/Questionnaire/lefs"


@pytest.mark.parametrize(("path", "questionnaire"), [
    ("/fhir/Questionnaire/lefs/$populate", None),
    ("/fhir/Questionnaire/$populate", {"name": "questionnaire", "valueCanonical": LEFS_URL}),
    ("/fhir/Questionnaire/$populate",
     {"name": "questionnaire", "valueReference": {"reference": "Questionnaire/lefs"}}),
])
def test_populate_of_a_prom_is_an_empty_response_for_the_subject(client, path,
                                                                 questionnaire) -> None:
    parts = [SUBJECT] + ([questionnaire] if questionnaire else [])
    body = fhir_http.ok(client.post(path, json={"resourceType": "Parameters", "parameter": parts},
                                    content_type=fhir_http.FHIR_JSON))
    (part,) = body["parameter"]
    response = part["resource"]
    assert part["name"] == "response" and validate(response) == []
    assert (response["questionnaire"], response["status"], response["subject"]) == (
        f"{LEFS_URL}|1.0.0", "in-progress", {"reference": "Patient/p1"})
    assert "item" not in response  # nothing is prefilled for the patient


def test_populate_of_a_prom_needs_a_subject(client) -> None:
    answer = client.post("/fhir/Questionnaire/psfs/$populate",
                         json={"resourceType": "Parameters", "parameter": [
                             {"name": "local", "valueBoolean": True}]},
                         content_type=fhir_http.FHIR_JSON)
    assert answer.status_code == 400
    assert answer.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("parameter", [7, True, {"name": "questionnaire"}, "lefs", None])
def test_populate_parameters_of_the_wrong_shape_are_an_outcome(client, parameter) -> None:
    """Found by the fuzz test: ``parameter`` that is not a list was a 500."""
    answer = client.post("/fhir/Questionnaire/$populate",
                         json={"resourceType": "Parameters", "parameter": parameter},
                         content_type=fhir_http.FHIR_JSON)
    assert 400 <= answer.status_code < 500
    assert answer.get_json()["resourceType"] == "OperationOutcome"


def test_metadata_names_the_outcome_measures_extract_and_populate_serve(client) -> None:
    statement = fhir_http.ok(client.get("/fhir/metadata"))
    assert validate(statement) == []
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    (populate,) = resources["Questionnaire"]["operation"]
    extract = resources["QuestionnaireResponse"]["operation"][0]
    for canonical in (f"{LEFS_URL}|1.0.0",
                      "http://posterior-thigh-exam.org/fhir/Questionnaire/psfs|1.0.0",
                      "http://posterior-thigh-exam.org/fhir/Questionnaire/keele-start-back|1.0.0"):
        assert canonical in populate["documentation"]
        assert canonical in extract["documentation"]
    assert "one survey Observation per score" in extract["documentation"]
    assert "nothing is prefilled" in populate["documentation"]


def test_sdc_parameters_with_the_instrument_and_a_patient_give_the_subject(client) -> None:
    response = lefs({n: 3 for n in range(1, 21)})
    del response["subject"]
    instrument = fhir_http.ok(client.get("/fhir/Questionnaire/lefs"))
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "questionnaire-response", "resource": response},
        {"name": "questionnaire", "resource": instrument},
        {"name": "patient", "resource": {"resourceType": "Patient", "id": "p-9",
                                         "birthDate": "1990-06-01"}}]}
    bundle = fhir_http.returned(client.post(EXTRACT, json=body,
                                            content_type=fhir_http.FHIR_JSON))
    total = _by_code(bundle)["lefs-total"]
    assert total["valueInteger"] == 60
    assert total["subject"] == {"reference": "Patient/p-9"}
    (qr,) = of_type(bundle, "QuestionnaireResponse")
    assert qr["subject"] == {"reference": "Patient/p-9"}


def test_a_questionnaire_parameter_other_than_the_answered_instrument_is_refused(client) -> None:
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "questionnaire-response", "resource": lefs({n: 3 for n in range(1, 21)})},
        {"name": "questionnaire", "resource": fhir_http.ok(client.get("/fhir/Questionnaire/psfs"))}]}
    answer = client.post(EXTRACT, json=body, content_type=fhir_http.FHIR_JSON)
    assert answer.status_code == 422
    assert answer.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(("rating", "says"), [
    (11, "11 is outside psfs-score-1's range"), (-1, "-1 is outside psfs-score-1's range")])
def test_a_psfs_rating_outside_0_to_10_is_refused(client, rating, says) -> None:
    response = psfs([rating])
    answer = client.post(EXTRACT, json=response, content_type=fhir_http.FHIR_JSON)
    assert answer.status_code == 422
    assert says in answer.get_json()["issue"][0]["details"]["text"]


def test_psfs_edges_0_and_10_are_accepted(client) -> None:
    assert _by_code(_extract(client, psfs([0, 10])))["psfs-mean"]["valueQuantity"]["value"] == 5


_VALUES = st.one_of(
    st.builds(lambda v: {"valueInteger": v}, st.integers(-5, 15)),
    st.builds(lambda v: {"valueString": v}, st.text(max_size=5)),
    st.builds(lambda c: {"valueCoding": {"system": OM, "code": c}},
              st.sampled_from(["lefs-0", "lefs-4", "sbst-agree", "x"])),
    st.builds(lambda v: {"valueDecimal": v}, st.floats(-1, 11, allow_nan=False)),
    st.just({"valueBoolean": True}), st.just({}))
_ITEMS = st.lists(st.fixed_dictionaries({
    "linkId": st.sampled_from(["lefs-item-1", "lefs-total", "psfs-score-1", "psfs-activity-1",
                               "psfs-mean", "sbst-item-1", "sbst-risk", "nope"]),
    "answer": st.lists(_VALUES, max_size=2)}), max_size=4)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(instrument=st.sampled_from(["lefs", "psfs", "keele-start-back"]), items=_ITEMS)
def test_any_answers_give_a_bundle_or_an_operation_outcome_never_a_500(client, instrument,
                                                                       items) -> None:
    response = {"resourceType": "QuestionnaireResponse", "status": "completed",
                "questionnaire": f"http://posterior-thigh-exam.org/fhir/Questionnaire/{instrument}",
                "item": items}
    answer = client.post(EXTRACT, json=response, content_type=fhir_http.FHIR_JSON)
    body = answer.get_json()
    assert answer.status_code in (200, 400, 422), body
    if answer.status_code == 200:
        assert validate(body) == []
    else:
        assert body["resourceType"] == "OperationOutcome"
