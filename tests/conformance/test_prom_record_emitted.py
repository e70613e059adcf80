"""A visit's outcome measures in the signed record pass both validators: each PROM's
QuestionnaireResponse (the exam's subject, encounter and signer, the patient as source)
and its survey Observations in the record Bundle, and the Observations as the FHIR API
stores and serves them (``derivedFrom`` a logical reference to the response)."""
from __future__ import annotations

import datetime as dt

import pytest

from plugin import __version__
from plugin.record import observations, pipeline, signoff, visit_proms
from tests.support.conformance import IndependentValidator, assert_conformant
from tests.support.prom_cases import CASES
from tests.support.tablet import ANSWERS

WHEN = dt.datetime(2026, 12, 6, 9, 30, tzinfo=dt.timezone.utc)
PATIENT = {"resourceType": "Patient", "id": "p-1", "birthDate": "1980-05-01",
           "name": [{"family": "Osei", "given": ["Ruth"]}]}
#: every scorable hand-checked case of every shipped instrument, as one visit's PROMs
PROMS = [response for cases in CASES.values() for _, response, expected in cases
         if any(v is not None for v in expected.values())]


@pytest.fixture(scope="module")
def validator():
    with IndependentValidator() as v:
        yield v


def test_the_record_bundle_and_the_stored_observations_of_a_visits_proms_validate(
        validator, kb) -> None:
    scored = visit_proms.checked(kb, PROMS)
    signed = signoff.sign(kb, ANSWERS, record_id="7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
                          patient=PATIENT, signed_at=WHEN, revision=1,
                          signer=signoff.Signer("Dr Lee", "Practitioner/u-1"),
                          encounter={"reference": "Encounter/e-1"})
    record = pipeline.record(kb, signed.exam, plugin_version=__version__, recorded=WHEN,
                             proms=scored)
    assert_conformant(validator, record)
    prom_qrs = [e["resource"] for e in record["entry"]
                if e["resource"]["resourceType"] == "QuestionnaireResponse"][1:]
    assert len(prom_qrs) == len(PROMS)
    for qr in prom_qrs:
        assert qr["encounter"] == {"reference": "Encounter/e-1"}
        assert qr["author"]["reference"] == "Practitioner/u-1"
        assert_conformant(validator, qr)
    stored = observations.of_revision(kb, exam_id="7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
                                      patient_id="p-1", number=1, response=signed.response,
                                      signed_at=WHEN, proms=scored)
    surveys = [r.resource for r in stored
               if "identifier" in (r.resource.get("derivedFrom") or [{}])[0]]
    scores = [i for inst, s in scored for i in s.get("item", [])
              if i["linkId"] in {c.link_id for c in inst.calculations}]
    assert len(surveys) == len(scores) > 0
    for resource in surveys:
        assert_conformant(validator, resource)
