"""The clinician's impression and plan as emitted (the working-diagnosis Condition, the
ClinicalImpression with the note, and the ordered ServiceRequests) validates under
fhir.resources AND the independent validator, for every golden case that records a
clinician's decision."""
from __future__ import annotations

import json

import pytest

from plugin.core import terminology as t
from tests.record.test_golden_impressions import CASES, signed_bundle
from tests.support.conformance import assert_conformant

MINE = (t.ID_CLINICIAN_CONDITION, t.ID_CLINICIAN_REFERRAL, t.ID_CLINICIAN_IMPRESSION)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_the_clinicians_resources_conform(kb, validator, path) -> None:
    bundle = signed_bundle(kb, json.loads(path.read_text()))
    mine = [e["resource"] for e in bundle["entry"]
            if isinstance(e["resource"].get("identifier"), list)
            and e["resource"]["identifier"][0]["system"] in MINE]
    assert "ClinicalImpression" in {r["resourceType"] for r in mine}
    for resource in mine:
        assert_conformant(validator, resource)
    assert_conformant(validator, bundle)
