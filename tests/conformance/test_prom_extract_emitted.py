"""Every resource $extract emits for an outcome measure passes both validators.

Why: the Bundle, the scored QuestionnaireResponse and its survey Observations go to the
EHR; each must be valid under fhir.resources and the independent Node validator.
"""
from __future__ import annotations


import pytest

from plugin.core import prom_extract
from tests.support.conformance import assert_conformant
from tests.support.prom_cases import CASES



@pytest.mark.parametrize("name", sorted(CASES))
def test_each_instrument_extraction_validates(validator, kb, name) -> None:
    instrument = kb.instruments[name]
    emitted = 0
    for _, response, _ in CASES[name]:
        bundle = prom_extract.extract(instrument, response, meanings=kb.interpretations,
                                      now="2026-12-06T09:00:00Z")
        assert_conformant(validator, bundle)
        for entry in bundle["entry"]:
            assert_conformant(validator, entry["resource"])
            emitted += entry["resource"]["resourceType"] == "Observation"
    assert emitted > 0
