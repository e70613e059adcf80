"""Vignettes: a clinician's expectation of each case's assessment, written by hand from
shared/clinical.md (tests/data/cases/README.md), checked against the engine.

A failure means the engine or the knowledge disagrees with the clinical sources as the
vignette reads them: fix one of them, or argue the vignette with a clinician; never
copy the engine's output into a vignette.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from plugin import __version__
from plugin.core import bundle
from plugin.record import pipeline
from plugin.decision import assessment, facts

CASES = sorted((Path(__file__).resolve().parents[1] / "data" / "cases").glob("*.json"))
VIGNETTES = [p for p in CASES if "assessment" in json.loads(p.read_text(encoding="utf-8"))]
CONDITIONS = {"proximal-hamstring-tendinopathy", "hamstring-strain", "proximal-hamstring-avulsion",
              "lumbar-radiculopathy", "lumbar-spinal-stenosis", "deep-gluteal-syndrome",
              "sacroiliac-joint-pain", "hamstring-syndrome", "neural-mechanosensitivity",
              "referred-lumbar-pain"}
RED_FLAGS = {"cauda-equina-syndrome", "serious-pathology", "severe-motor-deficit",
             "proximal-hamstring-avulsion"}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _exam(kb: Any, case: dict[str, Any]) -> Any:
    return pipeline.exam_from_input(kb, case["answers"], patient=case["patient"],
                                    now=dt.datetime.fromisoformat(case["authored"]))


def _assess(kb: Any, case: dict[str, Any]) -> dict[str, Any]:
    return pipeline.assess_exam(kb, _exam(kb, case)).as_json()


@pytest.fixture(params=VIGNETTES, ids=lambda p: p.stem)
def vignette(request) -> dict[str, Any]:
    return _load(request.param)


def test_there_are_enough_vignettes_covering_every_condition_and_red_flag() -> None:
    cases = [_load(p)["assessment"] for p in VIGNETTES]
    assert len(cases) >= 25
    assert CONDITIONS <= {c["top_condition"] for c in cases}
    assert RED_FLAGS <= {f for c in cases for f in c["red_flags"]}
    assert {"emergency", "urgent", "routine"} <= {c["urgency"] for c in cases}


def test_the_urgency_and_red_flags_are_the_expected_ones(kb, vignette) -> None:
    result, want = _assess(kb, vignette), vignette["assessment"]
    assert result["urgency"] == want["urgency"]
    assert {f["id"] for f in result["red_flags"]} == set(want["red_flags"])


def test_the_top_condition_leads_for_the_decisive_findings(kb, vignette) -> None:
    result, want = _assess(kb, vignette), vignette["assessment"]
    ranked = [d["condition"] for d in result["differential"]]
    if want["top_condition"] is None:
        assert ranked == []
        return
    assert ranked and ranked[0] == want["top_condition"], ranked
    top = result["differential"][0]
    named = {e["finding"] for e in top["for"]}
    assert set(want["decisive_findings"]) <= named, (want["decisive_findings"], named)


def test_considered_and_ruled_down_conditions(kb, vignette) -> None:
    result, want = _assess(kb, vignette), vignette["assessment"]
    by_id = {d["condition"]: d for d in result["differential"]}
    for condition in want.get("also_considered", []):
        assert condition in by_id, condition
    for condition in want.get("ruled_down", []):
        entry = by_id.get(condition)
        assert entry is None or (entry["rank"] > 1 and entry["likelihood"] == "low"), entry


def test_contributing_factors_and_referrals(kb, vignette) -> None:
    result, want = _assess(kb, vignette), vignette["assessment"]
    assert {f["id"] for f in result["contributing_factors"]} == set(want["contributing_factors"])
    services = [r["service"] for r in result["referrals"]]
    assert set(want["referrals_required"]) <= set(services), services
    assert not set(want["referrals_forbidden"]) & set(services), services


def test_red_flags_lead_the_referrals_and_are_never_outranked(kb, vignette) -> None:
    result = _assess(kb, vignette)
    priorities = [r["priority"] for r in result["referrals"]]
    assert priorities == sorted(priorities, key=("stat", "urgent", "routine").index)
    if result["red_flags"]:
        assert priorities and priorities[0] != "routine"
    if result["urgency"] == "emergency":
        assert set(priorities) == {"stat"}


def test_the_vignette_explains_itself(vignette) -> None:
    want = vignette["assessment"]
    assert len(want["reasoning"]) > 40 and vignette["story"]
    assert want["top_condition"] is None or want["top_condition"] in CONDITIONS


def test_the_same_assessment_from_the_extracted_observations(kb, vignette) -> None:
    """The engine reads coded Observations (from an EHR) exactly as it reads the exam."""
    exam = _exam(kb, vignette)
    record = bundle.extraction(exam, kb.mappings_for(exam.form), plugin_version=__version__,
                               recorded=vignette["authored"])
    observations = [e["resource"] for e in record["entry"]
                    if e["resource"]["resourceType"] == "Observation"]
    age = exam.answers.get("patient.age-years", (None,))[0]
    from_obs = assessment.assess(kb.decision, facts.from_observations(
        exam.form, kb.mappings_for(exam.form), observations, age=age))
    assert from_obs.as_json() == pipeline.assess_exam(kb, exam).as_json()


def test_assessing_twice_gives_the_same_answer(kb, vignette) -> None:
    assert json.dumps(_assess(kb, vignette)) == json.dumps(_assess(kb, vignette))
