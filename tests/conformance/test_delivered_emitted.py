"""What actually reaches the EHR validates under fhir.resources AND the independent
validator, under every delivery profile: the transaction Bundle as POSTed, and each
resource as the EHR stored it (for ``individual``, with the references the plugin
rewrote to the EHR's ids; for ``document-only``, with logical references to what was
left out). The record is that of an exam launched from the EHR: the EHR's own Patient
and Encounter, the clinician summary attached.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import pytest

from plugin import __version__
from plugin.adapters import ehr
from plugin.adapters.documents import render
from plugin.record import pipeline, signoff
from tests.support import module_server
from tests.support.conformance import assert_conformant
from tests.support.ehr import TestEhr

CASES = Path(__file__).resolve().parent.parent / "data" / "cases"
WHEN = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.timezone.utc)
PATIENT = {"resourceType": "Patient", "id": "ehr-p-1", "birthDate": "1990-01-01",
           "name": [{"family": "Okafor", "given": ["Ngozi"]}]}


@pytest.fixture(scope="module")
def fhir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fhir")
    server = module_server.start("fhir_server", str(folder / "fhir.json"),
                                 log=folder / "fhir.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def record(kb):
    case = json.loads((CASES / "disc-radiculopathy-8-weeks-severe.json").read_text())
    signed = signoff.sign(kb, case["answers"], record_id="8a7c3d1e-0f4b-4d2a-9c61-1b2e3f4a5b6c",
                          patient=PATIENT, signer=signoff.Signer("Dr Lee"), signed_at=WHEN, revision=1,
                          encounter={"reference": "Encounter/ehr-e-1"})
    exam = replace(signed.exam, context=replace(
        signed.exam.context, subject={"reference": "Patient/ehr-p-1",
                                      "display": "Ngozi Okafor"}))
    summary = render.summary_document(kb, exam, PATIENT, clinician="Dr Lee", now=WHEN,
                                      assessment=pipeline.assess_exam(kb, exam).as_json())
    return pipeline.record(kb, exam, plugin_version=__version__, recorded=WHEN,
                           documents=[summary])


@pytest.mark.parametrize("profile", ["transaction", "individual", "document-only"])
def test_what_the_ehr_receives_conforms(fhir, record, validator, profile) -> None:
    test_ehr = TestEhr(auth=fhir, fhir=fhir)  # only its FHIR-side helpers are used
    test_ehr._call(f"{fhir.url}/_reset", {})
    result = ehr.deliver(fhir.url, record, timeout=10, profile=profile)
    assert result.delivered, result.error
    state = test_ehr.state()
    for body in state["bodies"]:
        if isinstance(body, dict) and body.get("resourceType") == "Bundle":
            assert_conformant(validator, body)
    stored = state["resources"]
    kinds = {r["resourceType"] for r in stored}
    assert "DocumentReference" in kinds
    if profile != "document-only":
        assert {"QuestionnaireResponse", "Observation", "Provenance"} <= kinds
    for resource in stored:
        assert_conformant(validator, resource)
        assert "urn:uuid:" not in json.dumps(resource)  # every reference resolved
    for resource in stored:
        if "subject" in resource:
            assert resource["subject"]["reference"] == "Patient/ehr-p-1"
    document = next(r for r in stored if r["resourceType"] == "DocumentReference")
    assert document["context"]["encounter"] == [{"reference": "Encounter/ehr-e-1"}]
