"""The outcome measures, their CodeSystem and scored responses pass both validators.

Why: the instruments are published as FHIR (screens, PDFs and EHRs read them) and a scored
QuestionnaireResponse is what will be stored and sent; each must be valid under
fhir.resources and the independent Node validator, like everything else the plugin emits.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugin.core import scoring
from tests.support.conformance import assert_conformant
from tests.support.prom_cases import CASES

ROOT = Path(__file__).resolve().parents[2]
DROP_IN = ROOT / "tests" / "data" / "prom-drop-in" / "morning-stiffness-check.json"


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_instrument_and_its_scored_responses_validate(validator, kb, name) -> None:
    instrument = kb.instruments[name]
    assert_conformant(validator, dict(instrument.resource))
    for _, response, _ in CASES[name]:
        assert_conformant(validator, scoring.score(instrument, response))


def test_the_outcome_measures_code_system_validates(validator, kb) -> None:
    assert_conformant(validator, dict(kb.code_systems["outcome-measures"]))


def test_the_dropped_in_example_validates(validator) -> None:
    assert_conformant(validator, json.loads(DROP_IN.read_text()))
