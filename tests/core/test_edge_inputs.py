"""Inputs that once broke the pipeline (found in review); each must now be handled."""
from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from plugin import knowledge
from plugin.config import DEFAULTS
from plugin.core import bundle
from plugin.record import pipeline
from plugin.errors import AnswerError, InputError, KnowledgeError

NOW = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.timezone.utc)
Q = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam"


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_a_non_finite_quantity_is_an_answer_error(kb, number) -> None:
    with pytest.raises(AnswerError) as caught:
        pipeline.exam_from_input(kb, {"history.duration": {"value": number, "unit": "wk"}},
                                 now=NOW)
    assert "Expected a finite number" in caught.value.errors["history.duration"][0]


def test_a_fractional_quantity_stays_a_json_number(kb) -> None:
    exam = pipeline.exam_from_input(kb, {"history.duration": {"value": 2.5, "unit": "d"}},
                                    now=NOW)
    result = bundle.extraction(exam, kb.mappings_for(exam.form), plugin_version="t",
                               recorded=NOW.isoformat())
    text = json.dumps(result)  # a Decimal would not serialise
    obs = next(e["resource"] for e in result["entry"]
               if e["resource"]["resourceType"] == "Observation")
    assert obs["valueQuantity"]["value"] == 2.5 and '"value": 2.5' in text


@pytest.mark.parametrize("identifier", [{"system": "http://x"}, {"value": "abc"}])
def test_a_sender_identifier_must_have_system_and_value(kb, identifier) -> None:
    with pytest.raises(InputError) as caught:
        pipeline.exam_from_input(kb, {"resourceType": "QuestionnaireResponse", "status": "completed",
                                      "questionnaire": Q, "identifier": identifier}, now=NOW)
    assert "identifier needs both system and value" in caught.value.message


def test_an_age_above_the_range_from_birth_date_is_refused(kb) -> None:
    with pytest.raises(InputError) as caught:
        pipeline.exam_from_input(kb, {}, now=NOW, patient={"resourceType": "Patient",
                                                           "birthDate": "1890-01-01"})
    assert "gives an age of 136" in caught.value.message


def test_the_exam_identity_survives_a_corrected_display_name(kb) -> None:
    exam = pipeline.exam_from_input(kb, {"pain.current": 3}, now=NOW)
    named = replace(exam, context=replace(exam.context, subject={"reference": "Patient/1",
                                                                 "display": "Jon Smith"}))
    renamed = replace(exam, context=replace(exam.context, subject={"reference": "Patient/1",
                                                                   "display": "John Smith"}))
    other = replace(exam, context=replace(exam.context, subject={"reference": "Patient/2"}))
    assert named.exam_id == renamed.exam_id != other.exam_id


@pytest.mark.parametrize(("bounds", "message"), [
    ((600, "wk", 520, "wk"), "minQuantity is above maxQuantity"),
    ((0, "yr", 520, "wk"), "quantity units must be UCUM time units"),
])
def test_broken_quantity_bounds_stop_start_up(tmp_path: Path, bounds, message) -> None:
    qdir = tmp_path / "questionnaires"
    shutil.copytree(DEFAULTS["QUESTIONNAIRES_DIR"], qdir)
    path = qdir / "posterior-thigh-exam.json"
    data = json.loads(path.read_text())
    duration = next(i for i in data["item"][1]["item"] if i["linkId"] == "history.duration")
    for ext in duration["extension"]:
        if ext["url"].endswith("minQuantity"):
            ext["valueQuantity"].update(value=bounds[0], code=bounds[1])
        if ext["url"].endswith("maxQuantity"):
            ext["valueQuantity"].update(value=bounds[2], code=bounds[3])
    path.write_text(json.dumps(data))
    with pytest.raises(KnowledgeError) as caught:
        knowledge.load(qdir, DEFAULTS["MAPPINGS_DIR"])
    assert f"history.duration: {message}" in str(caught.value)
