"""Reading a received QuestionnaireResponse: what is refused, with which message, and why.

A QR goes through the same answers schema as the plain format, after a structural check
against the Questionnaire (nesting, value[x] type per item type, options, duplicates).
Problems with single answers are AnswerErrors keyed by linkId, all reported at once; a
body that is not a usable QR at all is an InputError.
"""
from __future__ import annotations

import copy
from typing import Any

import pytest

from plugin.core import responses
from plugin.core.questionnaire import Quantity
from plugin.errors import AnswerError, InputError

Q = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam|1.0.0"
ANSWERS = "http://posterior-thigh-exam.org/fhir/CodeSystem/exam-answers"
SNOMED = "http://snomed.info/sct"


def qr(items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"resourceType": "QuestionnaireResponse", "questionnaire": Q, "status": "completed",
            "item": items, **extra}


def slr_left(*answers_: dict[str, Any], link_id: str = "slr.left.onset-angle") -> list[dict]:
    return [{"linkId": "slr", "item": [{"linkId": "slr.left", "item": [
        {"linkId": link_id, "answer": list(answers_)}]}]}]


def pain(*answers_: dict[str, Any]) -> list[dict]:
    return [{"linkId": "pain", "item": [{"linkId": "pain.current", "answer": list(answers_)}]}]


def history(*items: dict[str, Any]) -> list[dict]:
    return [{"linkId": "history", "item": list(items)}]


def coding(code: str, system: str = ANSWERS) -> dict[str, Any]:
    return {"valueCoding": {"system": system, "code": code}}


BAD = [
    ("valueString for an integer", pain({"valueString": "5"}), "pain.current",
     "Expected valueInteger for an integer item, got valueString."),
    ("valueDecimal for an integer", pain({"valueDecimal": 5.0}), "pain.current",
     "Expected valueInteger"),
    ("valueString for a boolean", [{"linkId": "red-flags", "item": [
        {"linkId": "red-flags.fever", "answer": [{"valueString": "yes"}]}]}],
     "red-flags.fever", "Expected valueBoolean for a boolean item, got valueString."),
    ("an answer without a value", pain({"valueInteger": 3}, {}), "pain.current",
     "got no value"),
    ("option from another system",
     history({"linkId": "history.onset", "answer": [coding("sudden", "http://example.org")]}),
     "history.onset", "http://example.org|sudden is not an answer option."),
    ("unknown option code", history({"linkId": "history.onset", "answer": [coding("slowly")]}),
     "history.onset", f"{ANSWERS}|slowly is not an answer option."),
    ("short code where the Questionnaire offers SNOMED",
     history({"linkId": "history.affected-side", "answer": [coding("left")]}),
     "history.affected-side", "is not an answer option"),
    ("quantity without UCUM", history({"linkId": "history.duration", "answer": [
        {"valueQuantity": {"value": 3, "unit": "wk"}}]}),
     "history.duration", "A quantity needs a UCUM system and code."),
    ("quantity in a unit not offered", history({"linkId": "history.duration", "answer": [
        {"valueQuantity": {"value": 2, "system": "http://unitsofmeasure.org", "code": "a"}}]}),
     "history.duration", 'Unit "a" is not allowed; expected one of: d, wk, mo.'),
    ("question under the wrong group", [{"linkId": "pain", "item": [
        {"linkId": "slr.left.onset-angle", "answer": [{"valueInteger": 40}]}]}],
     "slr.left.onset-angle", "Misplaced: belongs under slr.left."),
    ("sided question under the other side", [{"linkId": "slr", "item": [
        {"linkId": "slr.right", "item": [
            {"linkId": "slr.left.onset-angle", "answer": [{"valueInteger": 40}]}]}]}],
     "slr.left.onset-angle", "Misplaced: belongs under slr.left."),
    ("question at the top level", [{"linkId": "pain.current", "answer": [{"valueInteger": 4}]}],
     "pain.current", "Misplaced: belongs under pain."),
    ("two answers to a non-repeating item", slr_left({"valueInteger": 40}, {"valueInteger": 45}),
     "slr.left.onset-angle", "Only one answer is allowed."),
    ("unknown linkId", slr_left({"valueInteger": 40}, link_id="slr.left.angle"),
     "slr.left.angle", "Unknown linkId"),
    ("out of range", slr_left({"valueInteger": 95}), "slr.left.onset-angle",
     "95 is out of range: must be between 0 and 90°."),
    ("duplicate group", pain({"valueInteger": 3}) + pain({"valueInteger": 4}), "pain",
     "Appears more than once."),
    ("duplicate question", [{"linkId": "pain", "item": [
        {"linkId": "pain.current", "answer": [{"valueInteger": 3}]},
        {"linkId": "pain.current", "answer": [{"valueInteger": 4}]}]}],
     "pain.current", "Appears more than once."),
    ("answer on a group", [{"linkId": "pain", "answer": [{"valueInteger": 3}], "item": [
        {"linkId": "pain.current", "answer": [{"valueInteger": 3}]}]}],
     "pain", "A group has no answers."),
    ("answer to a disabled question", history(
        {"linkId": "history.onset", "answer": [coding("gradual")]},
        {"linkId": "history.pop", "answer": [{"valueBoolean": True}]}),
     "history.pop", "applies only when history.onset = sudden"),
]


@pytest.mark.parametrize(("label", "items", "link_id", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_answer_is_refused_naming_its_linkid(form, label, items, link_id, message) -> None:
    with pytest.raises(AnswerError) as caught:
        responses.read(form, qr(items))
    assert list(caught.value.errors) == [link_id], caught.value.errors
    assert any(message in m for m in caught.value.errors[link_id]), caught.value.errors


def test_every_problem_is_reported_at_once(form) -> None:
    items = [{"linkId": "pain", "item": [
        {"linkId": "pain.current", "answer": [{"valueString": "3"}]},
        {"linkId": "pain.worst-week", "answer": [{"valueInteger": 11}]}]},
        {"linkId": "nope"}] + history({"linkId": "history.onset", "answer": [coding("slowly")]})
    with pytest.raises(AnswerError) as caught:
        responses.read(form, qr(items))
    assert set(caught.value.errors) == {"pain.current", "pain.worst-week", "nope",
                                        "history.onset"}


@pytest.mark.parametrize(("resource", "message"), [
    ({"resourceType": "Patient"}, "Expected a QuestionnaireResponse, got 'Patient'."),
    ({"resourceType": "Bundle", "type": "collection"}, "got 'Bundle'"),
    ({"status": "completed", "item": []}, "Expected a QuestionnaireResponse, got None."),
    ([1, 2], "Expected a QuestionnaireResponse, got 'list'."),
    ("QuestionnaireResponse", "Expected a QuestionnaireResponse, got 'str'."),
    (qr([], status="bogus"), "Unknown status 'bogus'"),
    (qr([], status=None), "not valid FHIR R4"),
    (qr([], authored="2026-11-21T10:00:00"), "not valid FHIR R4"),
], ids=["Patient", "Bundle", "no resourceType", "list", "string", "bogus status",
        "no status", "authored without zone"])
def test_an_unusable_body_is_an_input_error(form, resource, message) -> None:
    with pytest.raises(InputError) as caught:
        responses.read(form, resource)
    assert message in caught.value.message


def test_a_bogus_status_points_at_the_status(form) -> None:
    with pytest.raises(InputError) as caught:
        responses.read(form, qr([], status="bogus"))
    assert caught.value.issues[0][0] == "QuestionnaireResponse.status"


@pytest.mark.parametrize(("code", "plain"), [
    ("7771000", "left"), ("24028007", "right"), ("51440002", "bilateral")])
def test_snomed_laterality_reads_as_the_plain_code(form, code, plain) -> None:
    exam = responses.read(form, qr(history(
        {"linkId": "history.affected-side", "answer": [coding(code, SNOMED)]})))
    assert exam.answers["history.affected-side"] == (plain,)


def test_a_display_that_differs_is_not_a_different_answer(form) -> None:
    answer = {"valueCoding": {"system": SNOMED, "code": "7771000", "display": "Left side"}}
    exam = responses.read(form, qr(history({"linkId": "history.affected-side",
                                            "answer": [answer]})))
    assert exam.answers["history.affected-side"] == ("left",)


def test_a_valid_response_reads_into_typed_answers_and_its_context(form) -> None:
    sent = qr(slr_left({"valueInteger": 40}) + pain({"valueInteger": 0}) + history(
        {"linkId": "history.onset", "answer": [coding("sudden")]},
        {"linkId": "history.pop", "answer": [{"valueBoolean": True}]},
        {"linkId": "history.duration", "answer": [{"valueQuantity": {
            "value": 6, "unit": "wk", "system": "http://unitsofmeasure.org", "code": "wk"}}]},
        {"linkId": "history.pain-location", "answer": [coding("sit-bone"), coding("foot")]}),
        subject={"reference": "Patient/p1"}, author={"reference": "Practitioner/d1"},
        authored="2026-11-21T10:00:00+01:00")
    exam = responses.read(form, sent)
    assert dict(exam.answers) == {
        "history.onset": ("sudden",), "history.pop": (True,),
        "history.duration": (Quantity(6, "wk"),),
        "history.pain-location": ("sit-bone", "foot"),
        "slr.left.onset-angle": (40,), "pain.current": (0,)}
    assert exam.context.subject == {"reference": "Patient/p1"}
    assert exam.context.author == {"reference": "Practitioner/d1"}
    assert exam.context.authored == "2026-11-21T10:00:00+01:00"


def test_an_unanswered_item_is_allowed_and_carries_nothing(form) -> None:
    exam = responses.read(form, qr([{"linkId": "pain", "item": [
        {"linkId": "pain.current"},
        {"linkId": "pain.worst-week", "answer": [{"valueInteger": 4}]}]}]))
    assert dict(exam.answers) == {"pain.worst-week": (4,)}


def test_a_received_response_is_passed_on_as_sent(form) -> None:
    sent = qr(slr_left({"valueInteger": 40}), id="local-7", meta={"versionId": "3"},
              authored="2026-11-21T10:00:00+01:00",
              text={"status": "generated",
                    "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"})
    built = responses.build(responses.read(form, copy.deepcopy(sent)))
    assert "id" not in built and "meta" not in built  # server-managed, the EHR assigns its own
    assert built["text"] == sent["text"] and built["item"] == sent["item"]
    assert built["identifier"]["system"] == (
        "http://posterior-thigh-exam.org/fhir/id/questionnaire-response")


def test_our_identifier_in_a_received_response_is_kept(form) -> None:
    """A re-sent response keeps its identifier, so the EHR recognises the same exam."""
    ours = {"system": "http://posterior-thigh-exam.org/fhir/id/questionnaire-response",
            "value": "6d1f7a52-0000-4000-8000-000000000001"}
    exam = responses.read(form, qr(pain({"valueInteger": 2}), identifier=ours))
    assert exam.exam_id == ours["value"]
    assert responses.build(exam)["identifier"] == ours
