"""LHC-Forms, given the same Questionnaire and answers, computes the same scores as the product.

Why: "scoring as data" is only true if another SDC implementation reads the same data
the same way. lforms 40.1.3 (NLM's reference renderer) evaluates the calculatedExpressions
with fhirpath.js and its own ``weight()``; the product with fhirpathpy
(plugin/core/scoring.py). Every hand-checked case of tests/support/prom_cases.py, and a
made-up drop-in instrument, goes through both; one Chromium run per instrument.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from plugin import knowledge
from plugin.core import scoring
from tests.support.prom_cases import CASES, answers_of

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "browser" / "lforms-score.mjs"
DROP_IN = ROOT / "tests" / "data" / "prom-drop-in" / "morning-stiffness-check.json"
TOY = "http://clinic.example.org/fhir/CodeSystem/toy"


def lforms_scores(questionnaire: dict[str, Any],
                  responses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The QuestionnaireResponses LHC-Forms exports after loading each response."""
    done = subprocess.run(["node", str(SCRIPT)], cwd=SCRIPT.parent, capture_output=True,
                          text=True, timeout=300,
                          input=json.dumps({"questionnaire": questionnaire,
                                            "responses": responses}))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "page errors" not in done.stderr, done.stderr[-3000:]
    return json.loads(done.stdout)


def _toy(answers: dict[str, Any]) -> dict[str, Any]:
    items = [{"linkId": k, "answer": [{"valueCoding": {"system": TOY, "code": v}}
                                      if isinstance(v, str) else {"valueInteger": v}]}
             for k, v in answers.items()]
    return {"resourceType": "QuestionnaireResponse", "status": "completed", "item": items}


def _both(instrument: scoring.Instrument,
          responses: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    link_ids = {c.link_id for c in instrument.calculations}
    theirs = lforms_scores(dict(instrument.resource), responses)
    assert len(theirs) == len(responses)
    return [(answers_of(scoring.score(instrument, r), link_ids), answers_of(t, link_ids))
            for r, t in zip(responses, theirs)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_lforms_computes_the_same_scores(name: str) -> None:
    kb = knowledge.load(ROOT / "questionnaires", ROOT / "mappings")
    cases = CASES[name]
    results = _both(kb.instruments[name], [response for _, response, _ in cases])
    for (label, _, expected), (ours, theirs) in zip(cases, results):
        assert ours == expected, label
        assert theirs == expected, f"LHC-Forms, {label}"


def test_lforms_scores_a_dropped_in_instrument_the_same() -> None:
    instrument = scoring.parse(json.loads(DROP_IN.read_text()), source=str(DROP_IN))
    responses = [_toy({"stiff-1": "yes", "stiff-3": 3}),
                 _toy({"stiff-1": "yes", "stiff-2": "yes", "stiff-3": 3}),
                 _toy({"stiff-1": "yes"})]
    results = _both(instrument, responses)
    assert [ours for ours, _ in results] == [{"stiff-total": 5}, {"stiff-total": 7},
                                             {"stiff-total": None}]
    assert [theirs for _, theirs in results] == [ours for ours, _ in results]
