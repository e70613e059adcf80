"""A follow-up visit's record validates under fhir.resources AND the independent
validator: the extraction Bundle of a completed follow-up response (its QR naming the
follow-up Questionnaire, the Observations of the shared and the new items, the
assessment), and the follow-up Questionnaire as the API serves it."""
from __future__ import annotations

from plugin.core import answers, responses
from plugin.core.responses import Context, Exam
from tests.support.conformance import assert_conformant

FOLLOW_UP = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-follow-up"
PATIENT = {"resourceType": "Patient", "id": "p-follow", "name": [{"family": "Okoye",
           "given": ["Ada"]}], "birthDate": "1979-02-03"}
#: A typical follow-up: pain, SLR both sides, resisted knee flexion, palpation of the
#: affected site, neuro unchanged, red flags none, the global rating, the objective tests.
ANSWERS = {
    "history.affected-side": "left", "history.pt-weeks": 6,
    "follow-up.adherence": "most", "follow-up.global-rating": "improving",
    "follow-up.what-changed": "Runs 5 km without pain", "follow-up.note": "Progress to sprints",
    "red-flags.saddle-numbness": False, "red-flags.fever": False,
    "pain.current": 1, "pain.worst-week": 3,
    "slr.left.onset-angle": 75, "slr.left.response": "hamstring-stretch-only",
    "slr.right.onset-angle": 80, "slr.right.response": "none",
    "palpation.hamstring-mid.left": "not-tender",
    "hamstring-tests.resisted-knee-flexion.left": "strong-painfree",
    "neuro.since-last-visit": "unchanged",
    "return-to-sport.no-pain-palpation": "met", "return-to-sport.shared-decision": "not-met",
    "return-to-sport.h-test-angle.left": 70, "return-to-sport.h-test-angle.right": 80,
    "return-to-sport.h-test-insecurity.left": 20, "return-to-sport.strength-deficit": 8.5,
}


def test_the_extraction_bundle_of_a_follow_up_is_conformant(client, kb, validator) -> None:
    form = kb.forms["posterior-thigh-follow-up"]
    qr = responses.build(Exam(form, answers.load_plain(form, ANSWERS), Context(
        status="completed", authored="2026-04-06T09:00:00+00:00",
        subject={"reference": f"Patient/{PATIENT['id']}"})))
    assert_conformant(validator, qr)
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "questionnaire-response", "resource": qr},
        {"name": "patient", "resource": PATIENT}]}
    response = client.post("/fhir/QuestionnaireResponse/$extract", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    bundle = next(p["resource"] for p in response.get_json()["parameter"]
                  if p["name"] == "return")
    assert_conformant(validator, bundle)
    codes = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert_conformant(validator, resource)
        if resource["resourceType"] == "Observation":
            codes.append(resource["code"]["coding"][0]["code"])
        if resource["resourceType"] == "QuestionnaireResponse":
            assert resource["questionnaire"] == f"{FOLLOW_UP}|1.0.0"
    assert {"slr.onset-angle", "neuro.since-last-visit", "follow-up.global-rating",
            "return-to-sport.h-test-angle", "return-to-sport.strength-deficit"} <= set(codes)
    assert not [c for c in codes if c.startswith(("neuro.power", "neuro.reflex"))]


def test_the_follow_up_questionnaire_is_conformant(client, validator) -> None:
    served = client.get("/fhir/Questionnaire/posterior-thigh-follow-up")
    assert served.status_code == 200
    assert served.get_json()["url"] == FOLLOW_UP
    assert_conformant(validator, served.get_json())


def test_assessing_a_follow_up_over_the_api_is_conformant(client, kb, validator) -> None:
    """$assess takes a follow-up response like any: the radicular differential from its
    positive SLR, as a conformant collection Bundle."""
    form = kb.forms["posterior-thigh-follow-up"]
    answered = {**ANSWERS, "slr.left.onset-angle": 40, "slr.left.response": "leg-pain-below-knee"}
    qr = responses.build(Exam(form, answers.load_plain(form, answered), Context(
        status="completed", authored="2026-04-06T09:00:00+00:00",
        subject={"reference": f"Patient/{PATIENT['id']}"})))
    response = client.post("/fhir/QuestionnaireResponse/$assess", json={
        "resourceType": "Parameters", "parameter": [
            {"name": "questionnaire-response", "resource": qr},
            {"name": "patient", "resource": PATIENT}]})
    assert response.status_code == 200, response.get_data(as_text=True)
    bundle = next(p["resource"] for p in response.get_json()["parameter"]
                  if p["name"] == "return")
    assert_conformant(validator, bundle)
    conditions = [e["resource"] for e in bundle["entry"]
                  if e["resource"]["resourceType"] == "Condition"]
    assert conditions and any(c["code"] == "lumbar-radiculopathy"
                              for c in conditions[0]["code"]["coding"])
