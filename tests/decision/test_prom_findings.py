"""The decision support may use an outcome-measure score as a finding: a STarT Back high
risk suggests psychologically informed physiotherapy (NICE NG59 via clinical.md 5.1),
as a suggestion with its citation; medium or low risk, or no STarT Back at all, change
nothing. A band the interpretation file does not define stops start-up."""
from __future__ import annotations

import datetime as dt

import pytest

from plugin import knowledge
from plugin.core import prom_extract
from plugin.errors import KnowledgeError
from plugin.record import pipeline
from tests.support import knowledge_copies
from tests.support.prom_cases import start_back
from tests.support.tablet import ANSWERS

FOCUS = "psychologically informed physiotherapy"
NOW = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc)


def _assessed(kb, form, *proms):
    typed = pipeline.exam_from_input(kb, dict(ANSWERS), now=NOW).answers
    scored = [(kb.instrument_for(p["questionnaire"]),
               prom_extract.checked(kb.instrument_for(p["questionnaire"]), p)) for p in proms]
    return pipeline.assess_answers(kb, typed, scored).as_json()


def _focus(assessment):
    return [f for f in assessment["pt_focus"] if FOCUS in f["focus"]]


def test_start_back_high_risk_adds_the_physiotherapy_focus_with_its_citation(kb, form) -> None:
    assessed = _assessed(kb, form, start_back({1, 5, 6, 7, 8}, "very-much"))
    (focus,) = _focus(assessed)
    assert focus["focus"].startswith("Consider ")  # a suggestion
    assert focus["citations"] == ["nice-ng59-stratification"]
    assert "STarT Back" in kb.decision.citations["nice-ng59-stratification"].text
    physio = next(r for r in assessed["referrals"] if r["service"] == "physiotherapy")
    assert any(FOCUS in f for f in physio["focus"])
    assert [f["id"] for f in assessed["contributing_factors"]] == ["psychosocial-risk"]


@pytest.mark.parametrize("response", [start_back({1, 2, 3, 4}, "moderately"),  # medium
                                      start_back({5, 6, 7}, "slightly")])  # low
def test_medium_or_low_risk_changes_nothing(kb, form, response) -> None:
    assert _assessed(kb, form, response) == _assessed(kb, form)


def test_without_proms_the_assessment_is_the_exams(kb, form) -> None:
    assessed = _assessed(kb, form)
    assert not _focus(assessed) and assessed["contributing_factors"] == []


def test_a_band_the_interpretation_does_not_define_stops_start_up(tmp_path) -> None:
    root = knowledge_copies.copy(tmp_path / "k")
    path = root / "mappings" / "decision" / "findings.json"
    path.write_text(path.read_text().replace('"band": "LA9193-9"',
                                             '"band": "sbst-risk-very-high"'))
    with pytest.raises(KnowledgeError, match="sbst-risk-very-high"):
        knowledge.load(root / "questionnaires", root / "mappings")
