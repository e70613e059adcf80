"""Reasons a clinician can read (issue 12, item 4): each line says what was found, each
answer counts once per condition, "not assessed" names tests, and a referral cites
sources about the conditions it rests on."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from plugin.record import pipeline
from plugin.decision.assessment import Assessment

CASES = sorted((Path(__file__).resolve().parents[1] / "data" / "cases").glob("*.json"))
NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.timezone.utc)
#: A sit-bone pain picture: one palpation that reproduces the familiar pain, a positive
#: modified bent-knee stretch and a negative Puranen-Orava test, on the right.
PHT = {"history.affected-side": "right", "history.onset": "gradual",
       "history.pain-location": ["sit-bone"], "history.aggravating": ["sitting"],
       "sitting.effect": "aggravates",
       "palpation.ischial-tuberosity.right": "reproduces-familiar-pain",
       "hamstring-tests.modified-bent-knee-stretch.right": "positive",
       "hamstring-tests.puranen-orava.right": "negative"}
FAMILIAR = frozenset({("palpation.ischial-tuberosity.right", None)})


def assessed(kb: Any, answers: dict[str, Any], patient: dict[str, Any] | None = None
             ) -> Assessment:
    return pipeline.assess_exam(kb, pipeline.exam_from_input(kb, answers, patient=patient,
                                                             now=NOW))


def golden(kb: Any, path: Path) -> Assessment:
    case = json.loads(path.read_text(encoding="utf-8"))
    return pipeline.assess_exam(kb, pipeline.exam_from_input(
        kb, case["answers"], patient=case["patient"],
        now=dt.datetime.fromisoformat(case["authored"])))


def candidate(result: Assessment, condition: str) -> Any:
    return next(c for c in result.differential if c.condition.id == condition)


def test_a_negative_test_reads_negative(kb) -> None:
    pht = candidate(assessed(kb, PHT), "proximal-hamstring-tendinopathy")
    against = [e.label for e in pht.against if e.weight]
    assert "Puranen-Orava test negative" in against
    assert not any("positive" in label.lower() for label in against)
    assert "Modified bent-knee stretch test positive" in [e.label for e in pht.for_]


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_every_line_says_what_was_found(kb, path) -> None:
    """A line resting on a finding's absence reads as the absence, never as the finding."""
    for c in golden(kb, path).differential:
        for e in (*c.for_, *c.against):
            definition = kb.decision.findings[e.finding.id]
            if e.finding.truth is False:
                assert e.label == definition.absent_display, (c.condition.id, e)
                assert "positive" not in e.label.lower() or "not positive" in e.label.lower()
            else:
                assert e.label == definition.display


def test_one_familiar_pain_answer_counts_once(kb) -> None:
    pht = candidate(assessed(kb, PHT), "proximal-hamstring-tendinopathy")
    from_the_palpation = [e for e in pht.for_ if e.finding.sources == FAMILIAR]
    assert len(from_the_palpation) == 2  # tender, and reproduces the familiar pain
    counted = [e for e in from_the_palpation if e.weight]
    assert [e.label for e in counted] == ["Pressing the ischial tuberosity reproduces the familiar pain"]
    other, = (e for e in from_the_palpation if not e.weight)
    assert other.basis == ("counted once, with: Pressing the ischial tuberosity reproduces "
                           "the familiar pain")
    assert pht.score == round(sum(e.weight for e in (*pht.for_, *pht.against)), 2)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_each_answer_counts_once_per_condition(kb, path) -> None:
    for c in golden(kb, path).differential:
        counted = [e for e in (*c.for_, *c.against) if e.weight]
        answers = [e.finding.sources for e in counted if e.finding.sources]
        assert len(answers) == len(set(answers)), c.condition.id
        labels = [e.label for e in counted]
        assert len(labels) == len(set(labels)), c.condition.id


def test_not_assessed_names_the_tests_once_each(kb) -> None:
    result = assessed(kb, {"history.affected-side": "right", "history.onset": "gradual",
                           "history.pain-location": ["sit-bone"],
                           "history.aggravating": ["sitting"]})
    pht = candidate(result, "proximal-hamstring-tendinopathy")
    assert "ischial-tenderness" in pht.not_assessed  # the JSON contract keeps the ids
    assert "Ischial tuberosity palpation" in pht.missing_tests
    assert "Puranen-Orava test" in pht.missing_tests
    assert len(pht.missing_tests) == len(set(pht.missing_tests))
    assert not any("-positive" in t or t in kb.decision.findings for t in pht.missing_tests)
    caveat = next(c for c in result.caveats if c.id.startswith("not-assessed-"))
    assert "Ischial tuberosity palpation" in caveat.text
    assert "ischial-tenderness" not in caveat.text
    assert result.as_json()["differential"][0]["not_assessed_tests"] == list(
        result.differential[0].missing_tests)


def test_a_tendon_physiotherapy_referral_cites_tendon_sources_not_back_guidelines(kb) -> None:
    result = assessed(kb, PHT)
    physio = next(r for r in result.referrals if r.service.id == "physiotherapy")
    assert "proximal-hamstring-tendinopathy" in physio.conditions
    assert "goom-2016" in physio.citations
    assert not {"nice-ng59", "qaseem-2017"} & set(physio.citations)


def test_a_sciatica_physiotherapy_referral_cites_the_back_guidelines(kb) -> None:
    result = golden(kb, next(p for p in CASES if p.stem == "l5-s1-disc-radiculopathy"))
    physio = next(r for r in result.referrals if r.service.id == "physiotherapy")
    assert "lumbar-radiculopathy" in physio.conditions
    assert "nice-ng59" in physio.citations
    assert "goom-2016" not in physio.citations


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_each_referral_cites_sources_about_what_it_rests_on(kb, path) -> None:
    result = golden(kb, path)
    raised = {f.definition.id for f in result.red_flags}
    suggested = {c.condition.id for c in result.differential if c.suggested}
    rules = {r.id: r for r in kb.decision.rules}
    for referral in result.referrals:
        assert referral.citations, referral.service.id
        live = set().union(*(rules[r].topics() for r in referral.rules)) & (raised | suggested)
        for id_ in referral.citations:
            source = kb.decision.citations[id_]
            assert source.kind in ("publication", "guideline")
            if live:
                assert source.about & live, (referral.service.id, id_, live)


def test_a_programme_review_cites_sources_about_the_patients_condition(kb) -> None:
    """After weeks of loading the physiotherapy advice is a review ('instead'); its
    sources are still only those about the condition it rests on."""
    result = golden(kb, next(p for p in CASES if p.stem == "pht-8-weeks-loading-review"))
    physio = next(r for r in result.referrals if r.service.id == "physiotherapy")
    assert physio.timing.startswith("Review the programme")
    assert "goom-2016" in physio.citations
    assert not {"nice-ng59", "chou-2007", "rcgp-sciatica"} & set(physio.citations)


def test_the_ranking_reason_has_its_own_numbered_sources(kb) -> None:
    """The sources behind a diagnosis of exclusion's ranking are listed and cited where
    the reason is printed (decision/sources.py)."""
    from plugin.decision import sources

    result = golden(kb, next(p for p in CASES
                             if p.stem == "mixed-deep-gluteal-and-hamstring-origin-clusters"))
    entry = next(c for c in result.as_json()["differential"] if c.get("ranking_note"))
    dgs = candidate(result, "deep-gluteal-syndrome")
    assert entry["ranking_citations"] == list(dgs.condition.exclusion.citations)
    numbered = sources.numbered(result.as_json(), kb.decision.citations)
    assert set(entry["ranking_citations"]) <= set(numbered.numbers)
    assert numbered.cite(entry["ranking_citations"]).startswith("[")
