"""Golden cases: clinical vignettes in tests/data/cases/, answers in, Bundle content out.

Each case's ``expected`` block was written by hand from the exam dictionary and the
mappings and reviewed on purpose; this test only compares.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from plugin import __version__
from plugin.core import bundle, fhir_models, pipeline

CASES = sorted((Path(__file__).resolve().parents[1] / "data" / "cases").glob("*.json"))
LATERALITY = "http://hl7.org/fhir/StructureDefinition/observation-structureLaterality"
SIDES = {"7771000": "left", "24028007": "right"}
SURVEY_GROUPS = ("history.", "red-flags.", "pain.", "patient.")
RECORDED = "2026-11-21T12:00:00+00:00"


def extract(kb, case: dict[str, Any], answers: dict[str, Any] | None = None) -> dict[str, Any]:
    now = dt.datetime.fromisoformat(case["authored"])
    exam = pipeline.exam_from_input(kb, case["answers"] if answers is None else answers,
                                    patient=case["patient"], now=now)
    exam = replace(exam, context=replace(exam.context, author=case["author"]))
    return bundle.extraction(exam, kb.mappings_for(exam.form), plugin_version=__version__,
                             recorded=RECORDED)


def observations(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Observations by identifier suffix (``<linkId>[/<code>]``)."""
    found = {}
    for entry in result["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Observation":
            found[resource["identifier"][0]["value"].split("/", 1)[1]] = resource
    return found


@pytest.fixture(params=CASES, ids=lambda p: p.stem)
def case(request) -> dict[str, Any]:
    return json.loads(request.param.read_text(encoding="utf-8"))


def test_expected_observations(kb, case) -> None:
    found = observations(extract(kb, case))
    expected = case["expected"]
    assert len(found) == expected["observation_count"]
    for link_id in expected["not_extracted"]:
        assert not any(key.split("/")[0] == link_id for key in found)
    for want in expected["observations"]:
        obs = found[want["linkId"]]
        assert want["code"] in [c["code"] for c in obs["code"]["coding"]]
        value = {k: v for k, v in obs.items() if k.startswith("value")}
        assert value == want["value"], want["linkId"]
        lateralities = [SIDES[e["valueCodeableConcept"]["coding"][0]["code"]]
                        for e in obs.get("bodySite", {}).get("extension", [])
                        if e["url"] == LATERALITY]
        assert lateralities == ([want["laterality"]] if want["laterality"] else [])
        interpretation = [c["code"] for i in obs.get("interpretation", []) for c in i["coding"]]
        assert interpretation == ([want["interpretation"]] if want["interpretation"] else [])


def test_every_observation_carries_the_exam_context(kb, case) -> None:
    result = extract(kb, case)
    qr_url = result["entry"][0]["fullUrl"]
    for key, obs in observations(result).items():
        assert obs["status"] == "final"
        assert obs["subject"]["reference"] == f"Patient/{case['patient']['id']}"
        assert obs["effectiveDateTime"] == obs["issued"] == case["authored"]
        assert obs["performer"] == [case["author"]]
        assert obs["derivedFrom"] == [{"reference": qr_url, "type": "QuestionnaireResponse"}]
        category = obs["category"][0]["coding"][0]["code"]
        assert category == ("survey" if key.startswith(SURVEY_GROUPS) else "exam"), key
        if key.startswith("slr.") and key.endswith("onset-angle"):
            assert obs["valueQuantity"]["code"] == "deg"


def test_the_bundle_is_a_safe_transaction(kb, case) -> None:
    result = extract(kb, case)
    assert result["type"] == "transaction"
    urls = {e["fullUrl"] for e in result["entry"]}
    assert all(u.startswith("urn:uuid:") for u in urls) and len(urls) == len(result["entry"])
    for entry in result["entry"]:
        resource, request = entry["resource"], entry["request"]
        assert request["method"] == "POST" and request["url"] == resource["resourceType"]
        if resource["resourceType"] == "Provenance":
            assert request["ifNoneExist"].startswith("entity:QuestionnaireResponse.identifier=")
            continue
        identifier = resource["identifier"]
        identifier = identifier[0] if isinstance(identifier, list) else identifier
        assert request["ifNoneExist"] == f"identifier={identifier['system']}|{identifier['value']}"
    references = [r for e in result["entry"] for r in _references(e["resource"])]
    for reference in references:
        assert reference in urls or reference.startswith(("Patient/", "Practitioner/")), reference


def test_extracting_twice_gives_the_same_bundle(kb, case) -> None:
    assert extract(kb, case) == extract(kb, case)


def test_a_changed_answer_is_a_new_record(kb, case) -> None:
    changed = dict(case["answers"], **{"pain.current": (case["answers"].get("pain.current", 0) + 1) % 11})
    before = {e["request"]["ifNoneExist"] for e in extract(kb, case)["entry"]}
    after = {e["request"]["ifNoneExist"] for e in extract(kb, case, changed)["entry"]}
    assert len(before & after) == 1  # only the plugin Device is shared


def test_provenance_names_the_plugin_and_its_version(kb, case) -> None:
    result = extract(kb, case)
    by_url = {e["fullUrl"]: e["resource"] for e in result["entry"]}
    provenance = next(r for r in by_url.values() if r["resourceType"] == "Provenance")
    device = by_url[provenance["agent"][0]["who"]["reference"]]
    assert device["resourceType"] == "Device"
    assert device["version"] == [{"value": __version__}]
    assert provenance["agent"][1]["who"] == case["author"]
    assert provenance["recorded"] == case["authored"]
    assert {t["reference"] for t in provenance["target"]} == {
        u for u, r in by_url.items() if r["resourceType"] == "Observation"}


def test_every_resource_is_valid_fhir(kb, case) -> None:
    result = extract(kb, case)
    assert fhir_models.validate(result) == []
    for entry in result["entry"]:
        assert fhir_models.validate(entry["resource"]) == []


def test_there_are_the_five_required_cases() -> None:
    names = {p.stem for p in CASES}
    assert {"triathlete-proximal-hamstring-tendinopathy", "runner-deep-gluteal",
            "l5-s1-disc-radiculopathy", "sprinter-proximal-avulsion", "normal-exam"} <= names


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return own + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []
