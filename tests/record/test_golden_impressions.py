"""Golden cases with the clinician's decision (tests/data/cases/*.json ``clinician``):
the clinician's impression and plan in, the transaction Bundle's clinician resources out.

Each ``clinician.expected`` was written by hand from the case's story and the decision
vocabulary; this test only compares. The suggestions stay as they were (differential
Conditions, proposal ServiceRequests); the clinician's own are told apart by their
identifier systems, their status and intent, and the signer they name.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from plugin import __version__
from plugin.core import fhir_models
from plugin.core import terminology as t
from plugin.decision import impression
from plugin.record import pipeline

CASES = [p for p in sorted((Path(__file__).resolve().parents[1] / "data" / "cases")
                           .glob("*.json")) if "clinician" in json.loads(p.read_text())]
RECORDED = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.timezone.utc)


def _case(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def signed_bundle(kb, case: dict[str, Any]) -> dict[str, Any]:
    now = dt.datetime.fromisoformat(case["authored"])
    exam = pipeline.exam_from_input(kb, case["answers"], patient=case["patient"], now=now)
    exam = replace(exam, context=replace(exam.context, author=case["author"],
                                         status="completed"))
    decided = impression.load(kb.decision, case["clinician"]["impression"])
    return pipeline.record(kb, exam, plugin_version=__version__, recorded=RECORDED,
                           impression=decided)


def _system(resource: dict[str, Any]) -> str | None:
    identifier = resource.get("identifier")
    return identifier[0]["system"] if isinstance(identifier, list) else None


def _by_system(bundle: dict[str, Any], system: str) -> list[dict[str, Any]]:
    return [e for e in bundle["entry"] if _system(e["resource"]) == system]


def _decision_code(resource: dict[str, Any]) -> str:
    return next(c["code"] for c in resource["code"]["coding"] if c["system"] == t.DECISION_SUPPORT)


def test_there_are_golden_decisions_for_each_kind_of_outcome() -> None:
    outcomes = {o for p in CASES for o in _case(p)["clinician"]["expected"]["outcomes"].values()}
    assert len(CASES) >= 3 and {"accepted", "changed", "dropped", "added", "undecided"} <= outcomes


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_the_working_diagnosis_is_the_clinicians_condition(kb, path) -> None:
    case = _case(path)
    expected = case["clinician"]["expected"]["condition"]
    bundle = signed_bundle(kb, case)
    mine = _by_system(bundle, t.ID_CLINICIAN_CONDITION)
    suggestions = [e["resource"] for e in _by_system(bundle, t.ID_CONDITION)]
    assert suggestions and all(r["verificationStatus"]["coding"][0]["code"] == "differential"
                               for r in suggestions)
    if expected is None:
        assert mine == []
        return
    (entry,) = mine
    condition = entry["resource"]
    assert _decision_code(condition) == expected["code"]
    assert condition["verificationStatus"]["coding"][0]["code"] == expected["verification"]
    assert condition["asserter"] == case["author"]
    assert [n["text"] for n in condition.get("note", [])] == \
        ([expected["note"]] if expected["note"] else [])
    observations = {e["fullUrl"] for e in bundle["entry"]
                    if e["resource"]["resourceType"] == "Observation"}
    evidence = [d["reference"] for ev in condition.get("evidence", []) for d in ev["detail"]]
    assert bool(evidence) == expected["evidence"] and set(evidence) <= observations
    assert "suggestion" not in json.dumps(condition).lower()


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_the_note_and_diagnosis_reach_the_ehr_as_a_clinical_impression(kb, path) -> None:
    """With or without a working diagnosis, the clinician's note travels as structured
    data (ClinicalImpression.summary), not only inside the summary PDF; the working
    diagnosis is its finding; the signer is its assessor."""
    case = _case(path)
    expected = case["clinician"]["expected"]["impression"]
    bundle = signed_bundle(kb, case)
    mine = _by_system(bundle, t.ID_CLINICIAN_IMPRESSION)
    if expected is None:
        assert mine == []
        return
    (entry,) = mine
    resource = entry["resource"]
    assert entry["request"]["ifNoneExist"] == \
        f"identifier={t.ID_CLINICIAN_IMPRESSION}|{resource['identifier'][0]['value']}"
    assert (resource["status"], resource["assessor"], resource["date"]) == \
        ("completed", case["author"], case["authored"])
    assert resource["subject"]["reference"] == f"Patient/{case['patient']['id']}"
    assert resource.get("summary") == expected["summary"]
    conditions = [e["fullUrl"] for e in _by_system(bundle, t.ID_CLINICIAN_CONDITION)]
    assert [f["itemReference"]["reference"] for f in resource.get("finding", [])] == \
        (conditions if expected["finding"] else [])
    assert bool(conditions) == expected["finding"]


def test_nothing_decided_sends_no_clinical_impression(kb) -> None:
    case = _case(CASES[0])
    case["clinician"]["impression"] = {}
    assert _by_system(signed_bundle(kb, case), t.ID_CLINICIAN_IMPRESSION) == []


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_the_referrals_made_are_orders_and_the_dropped_ones_are_not_sent(kb, path) -> None:
    case = _case(path)
    expected = case["clinician"]["expected"]
    bundle = signed_bundle(kb, case)
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    orders = [e["resource"] for e in _by_system(bundle, t.ID_CLINICIAN_REFERRAL)]
    assert [(_decision_code(r), r["priority"]) for r in orders] == \
        [(o["service"], o["priority"]) for o in expected["orders"]]
    for order, wanted in zip(orders, expected["orders"]):
        assert (order["status"], order["intent"]) == ("active", "order")
        assert order["requester"] == case["author"]
        based = [urls[b["reference"]] for b in order.get("basedOn", [])]
        assert bool(based) == wanted["based_on_suggestion"]
        assert all(p["intent"] == "proposal" and _decision_code(p) == wanted["service"]
                   for p in based)
    ordered = {_decision_code(r) for r in orders}
    assert not ordered & set(expected["not_ordered"])
    proposals = {_decision_code(e["resource"]) for e in _by_system(bundle, t.ID_SERVICE_REQUEST)}
    assert set(expected["not_ordered"]) <= proposals  # still there, as the suggestion


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_each_decision_reads_as_expected_against_the_suggestions(kb, path) -> None:
    case = _case(path)
    exam = pipeline.exam_from_input(kb, case["answers"], patient=case["patient"],
                                    now=dt.datetime.fromisoformat(case["authored"]))
    decided = impression.load(kb.decision, case["clinician"]["impression"])
    outcomes = impression.referral_outcomes(
        kb.decision, decided, pipeline.suggested_referrals(pipeline.assess_exam(kb, exam)))
    assert {o.service: o.outcome for o in outcomes} == case["clinician"]["expected"]["outcomes"]


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_the_clinicians_resources_are_valid_and_safe_to_post_again(kb, path) -> None:
    case = _case(path)
    bundle = signed_bundle(kb, case)
    assert signed_bundle(kb, case) == bundle
    identifiers = [(i[0]["system"], i[0]["value"]) for i in
                   (e["resource"].get("identifier") for e in bundle["entry"])
                   if isinstance(i, list)]
    assert len(identifiers) == len(set(identifiers))
    for entry in bundle["entry"]:
        assert fhir_models.validate(entry["resource"]) == []
        assert entry["request"]["ifNoneExist"]
    provenance = bundle["entry"][-1]["resource"]
    targets = {t_["reference"] for t_ in provenance["target"]}
    assert {e["fullUrl"] for e in _by_system(bundle, t.ID_CLINICIAN_REFERRAL)} <= targets
