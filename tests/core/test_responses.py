"""Reading a received QuestionnaireResponse, and every item round-tripping through one."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from plugin.core import answers, bundle, responses
from plugin.core.responses import Context, Exam
from plugin.errors import AnswerError, InputError

Q = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam|1.0.0"


def qr(items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"resourceType": "QuestionnaireResponse", "questionnaire": Q, "status": "completed",
            "item": items, **extra}


def slr_left(*answers_: dict[str, Any], link_id: str = "slr.left.onset-angle") -> list[dict]:
    return [{"linkId": "slr", "item": [{"linkId": "slr.left", "item": [
        {"linkId": link_id, "answer": list(answers_)}]}]}]


def pain(answer: dict[str, Any]) -> list[dict]:
    return [{"linkId": "pain", "item": [{"linkId": "pain.current", "answer": [answer]}]}]


BAD = [
    ("wrong value type", pain({"valueString": "5"}), "pain.current",
     "Expected valueInteger for a integer item, got valueString."),
    ("unknown option", [{"linkId": "history", "item": [{"linkId": "history.onset", "answer": [
        {"valueCoding": {"system": "http://example.org", "code": "sudden"}}]}]}],
     "history.onset", "http://example.org|sudden is not an answer option."),
    ("misplaced item", [{"linkId": "pain", "item": [
        {"linkId": "slr.left.onset-angle", "answer": [{"valueInteger": 40}]}]}],
     "slr.left.onset-angle", "Misplaced: belongs under slr.left."),
    ("top-level question", [{"linkId": "pain.current", "answer": [{"valueInteger": 4}]}],
     "pain.current", "Misplaced: belongs under pain."),
    ("two answers to a single item", slr_left({"valueInteger": 40}, {"valueInteger": 45}),
     "slr.left.onset-angle", "Only one answer is allowed."),
    ("unknown linkId", slr_left({"valueInteger": 40}, link_id="slr.left.angle"),
     "slr.left.angle", "Unknown linkId"),
    ("out of range", slr_left({"valueInteger": 95}), "slr.left.onset-angle",
     "95 is out of range"),
    ("duplicate item", pain({"valueInteger": 3}) + pain({"valueInteger": 4}), "pain",
     "Appears more than once."),
]


@pytest.mark.parametrize(("label", "items", "link_id", "message"), BAD, ids=[b[0] for b in BAD])
def test_structural_and_value_errors_name_the_linkid(form, label, items, link_id, message) -> None:
    with pytest.raises(AnswerError) as caught:
        responses.read(form, qr(items))
    assert any(message in m for m in caught.value.errors[link_id]), caught.value.errors


@pytest.mark.parametrize(("resource", "message"), [
    ({"resourceType": "Patient"}, "Expected a QuestionnaireResponse, got 'Patient'."),
    ([1, 2], "Expected a QuestionnaireResponse, got 'list'."),
    (qr([], status="bogus"), "Unknown status 'bogus'"),
    (qr([], authored="2026-11-21T10:00:00"), "not valid FHIR R4"),
])
def test_unusable_responses_are_input_errors(form, resource, message) -> None:
    with pytest.raises(InputError) as caught:
        responses.read(form, resource)
    assert message in caught.value.message


def test_snomed_laterality_reads_as_the_plain_code(form) -> None:
    exam = responses.read(form, qr([{"linkId": "history", "item": [
        {"linkId": "history.affected-side", "answer": [{"valueCoding": {
            "system": "http://snomed.info/sct", "code": "7771000"}}]}]}]))
    assert exam.answers["history.affected-side"] == ("left",)


def test_a_received_response_is_passed_on_as_sent(form) -> None:
    sent = qr(slr_left({"valueInteger": 40}), id="local-7", meta={"versionId": "3"},
              authored="2026-11-21T10:00:00+01:00",
              text={"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"})
    built = responses.build(responses.read(form, copy.deepcopy(sent)))
    assert "id" not in built and "meta" not in built  # server-managed, the EHR assigns its own
    assert built["text"] == sent["text"] and built["item"] == sent["item"]
    assert built["identifier"]["system"] == "http://posterior-thigh-exam.org/fhir/id/questionnaire-response"


def sample(item: Any) -> Any:
    """A valid plain answer for any answerable item of the exam."""
    if item.type == "boolean":
        return True
    if item.type == "integer":
        return item.max_value
    if item.type == "quantity":
        return {"value": 3, "unit": item.unit_options[-1]}
    codes = [o.code for o in item.options]
    return codes[:2] if item.repeats else codes[-1]


def test_every_item_round_trips_answers_to_response_to_observations(kb, form) -> None:
    plain = {i.link_id: sample(i) for i in form.answerable}
    plain.update({"history.onset": "sudden", "sitting.effect": "aggravates"})
    loaded = answers.load_plain(form, plain)
    assert set(loaded) == {i.link_id for i in form.answerable}
    exam = Exam(form, loaded, Context(authored="2026-11-21T10:00:00+00:00"))
    built = responses.build(exam)
    assert responses.read(form, built).answers == loaded
    result = bundle.extraction(exam, kb.mappings_for(form), plugin_version="test",
                               recorded="2026-11-21T10:00:00+00:00")
    extracted: dict[str, int] = {}
    for entry in result["entry"]:
        if entry["resource"]["resourceType"] == "Observation":
            link_id = entry["resource"]["identifier"][0]["value"].split("/")[1]
            extracted[link_id] = extracted.get(link_id, 0) + 1
    mappings = kb.mappings_for(form)
    assert extracted == {k: len(v) for k, v in loaded.items() if k in mappings.by_link_id}
    assert not set(extracted) & set(mappings.not_extracted)
