"""What the tablet stores as the record validates under fhir.resources AND the
independent validator: the in-progress draft response, the signed (completed and
amended) responses and each signature's Provenance, for every golden case."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from plugin.core import drafts
from plugin.record import signoff
from plugin.core.responses import Context
from tests.support.conformance import assert_conformant

CASES = sorted((Path(__file__).resolve().parent.parent / "data" / "cases").glob("*.json"))
WHEN = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.timezone.utc)


#: A signed-in user as the record names them: Practitioner reference, identifier, name.
SIGNER = signoff.Signer("Dr Lee", "Practitioner/0b7c2a53-8f7e-4c1e-9a57-3c0d3c6b1f00",
                        {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"})


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_signed_records_and_drafts_conform(kb, form, validator, path) -> None:
    case = json.loads(path.read_text())
    patient = dict(case["patient"], id="p-1")
    checked = drafts.check(form, case["answers"])
    draft = drafts.response(form, checked, Context(status="in-progress", identifier="exam-1",
                                                   authored=WHEN.isoformat()))
    assert_conformant(validator, draft)
    for revision, reason in ((1, None), (2, "Corrected after review")):
        signed = signoff.sign(kb, case["answers"], record_id="exam-1", patient=patient,
                              signer=SIGNER, signed_at=WHEN, revision=revision, reason=reason)
        assert_conformant(validator, signed.response)
        assert_conformant(validator, signed.provenance)
