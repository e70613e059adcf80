"""Every answerable item of the exam survives the whole trip.

plain answers -> typed answers -> QuestionnaireResponse -> (JSON) -> read back -> the same
answers -> one Observation per answer of each mapped linkId, none for the linkIds the
mapping file lists as not extracted. Values are generated from each item's own
definition (type, range, options, units) at both ends of every range.
"""
from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from plugin import knowledge
from plugin.config import DEFAULTS
from plugin.core import answers, bundle, fhir_models, responses
from plugin.record import pipeline
from plugin.core.questionnaire import Item
from plugin.core.responses import Context, Exam

AUTHORED = "2026-11-21T10:30:00+01:00"
CONTEXT = Context(subject={"reference": "Patient/rt-1"}, author={"reference": "Practitioner/rt"},
                  authored=AUTHORED)
#: Answers that enable the dependent questions (history.mechanism and history.pop need
#: onset = sudden; sitting.tolerance-minutes needs effect = aggravates).
ENABLING = {"history.onset": "sudden", "sitting.effect": "aggravates"}
#: UCUM time units in seconds (mo is UCUM's mean Julian month, 30.4375 days).
SECONDS = {"d": 86400, "wk": 604800, "mo": Decimal("2629800")}

_KB = knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], DEFAULTS["MAPPINGS_DIR"])
FORM = _KB.forms["posterior-thigh-exam"]


@dataclass(frozen=True)
class Case:
    item: Item
    value: Any

    def __str__(self) -> str:
        return f"{self.item.link_id}={json.dumps(self.value)}"


def valid_answers(item: Item) -> list[Any]:
    """Plain answers the dictionary allows for ``item``: both ends of ranges, every option."""
    if item.type == "boolean":
        return [True, False]
    if item.type == "integer":
        return [item.min_value, item.max_value]
    if item.type == "choice":
        codes = [o.code for o in item.options]
        if not item.repeats:
            return codes
        # every option the item allows together, and each exclusive one ("None") alone
        return [[o.code for o in item.options if not o.exclusive],
                *([o.code] for o in item.options if o.exclusive)]
    if item.type == "quantity":
        high = item.max_quantity.value * SECONDS[item.max_quantity.unit]
        return [v for unit in item.unit_options
                for v in ({"value": 0, "unit": unit},
                          {"value": int(high // SECONDS[unit]), "unit": unit})]
    raise AssertionError(f"no sample for item type {item.type} ({item.link_id})")


CASES = [Case(item, value) for item in FORM.answerable for value in valid_answers(item)]


def round_trip(plain: dict[str, Any]) -> tuple[Exam, dict[str, Any], Exam, dict[str, Any]]:
    loaded = answers.load_plain(FORM, plain)
    exam = Exam(FORM, loaded, CONTEXT)
    qr = json.loads(json.dumps(responses.build(exam)))
    back = responses.read(FORM, qr)
    result = bundle.extraction(exam, _KB.mappings_for(FORM), plugin_version="test",
                               recorded=AUTHORED)
    return exam, qr, back, result


def extracted(result: dict[str, Any]) -> Counter[str]:
    return Counter(e["resource"]["identifier"][0]["value"].split("/")[1]
                   for e in result["entry"] if e["resource"]["resourceType"] == "Observation")


def test_every_answerable_item_has_samples() -> None:
    assert {c.item.link_id for c in CASES} == {i.link_id for i in FORM.answerable}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_an_answer_round_trips_and_is_extracted_once_per_value(case: Case) -> None:
    link_id = case.item.link_id
    plain = {**ENABLING, link_id: case.value}
    exam, qr, back, result = round_trip(plain)
    assert back.answers == exam.answers
    # Nothing is clamped, rounded or coerced on the way.
    assert [answers.plain_value(case.item, v) for v in back.answers[link_id]] == (
        case.value if case.item.repeats else [case.value])
    mappings = _KB.mappings_for(FORM)
    counts = extracted(result)
    if link_id in mappings.not_extracted:
        assert counts[link_id] == 0
    else:
        assert counts[link_id] == (len(case.value) if case.item.repeats else 1)
    assert set(counts) == {k for k in exam.answers if k in mappings.by_link_id}
    assert fhir_models.validate(qr) == []


def test_the_whole_exam_answered_at_once_round_trips(kb, form) -> None:
    plain = {c.item.link_id: c.value for c in CASES}  # the last sample of each item
    plain.update(ENABLING)
    exam, qr, back, result = round_trip(plain)
    assert set(exam.answers) == {i.link_id for i in form.answerable}
    assert back.answers == exam.answers
    mappings = kb.mappings_for(form)
    assert extracted(result) == Counter({k: len(v) for k, v in exam.answers.items()
                                         if k in mappings.by_link_id})
    assert not set(extracted(result)) & set(mappings.not_extracted)
    for entry in result["entry"]:
        assert fhir_models.validate(entry["resource"]) == [], entry["resource"]["resourceType"]


def test_a_response_in_gives_the_same_bundle_as_the_plain_answers(kb, form) -> None:
    """The two input formats are the same exam: same identifiers, same Observations."""
    plain = {c.item.link_id: c.value for c in CASES}
    plain.update(ENABLING)
    exam = Exam(form, answers.load_plain(form, plain), CONTEXT)
    qr = json.loads(json.dumps(responses.build(exam)))
    from_qr = pipeline.exam_from_input(kb, qr, now=dt.datetime.fromisoformat(AUTHORED))
    mappings = kb.mappings_for(form)
    first = bundle.extraction(exam, mappings, plugin_version="test", recorded=AUTHORED)
    second = bundle.extraction(from_qr, mappings, plugin_version="test", recorded=AUTHORED)
    assert second == first


def test_a_response_keeps_the_questionnaire_nesting(form) -> None:
    exam, qr, _, _ = round_trip({"slr.left.onset-angle": 40, "pain.current": 3})
    assert [i["linkId"] for i in qr["item"]] == ["slr", "pain"]
    assert qr["item"][0]["item"][0]["linkId"] == "slr.left"
    assert qr["item"][0]["item"][0]["item"][0]["answer"] == [{"valueInteger": 40}]
    assert qr["item"][1]["item"][0]["answer"] == [{"valueInteger": 3}]
