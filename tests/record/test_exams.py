"""The record's use cases that are pure decisions: how the signer reaches the EHR."""
from __future__ import annotations

from plugin.record import exams, signoff


def test_the_ehr_gets_the_signers_identifier_and_name_not_our_practitioner_id() -> None:
    signer = signoff.Signer("Dr Ann Lee", "Practitioner/u-1",
                            {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"})
    local = signer.as_reference()
    assert local == {"reference": "Practitioner/u-1", "type": "Practitioner",
                     "identifier": {"system": "http://hl7.org/fhir/sid/us-npi",
                                    "value": "1234567893"}, "display": "Dr Ann Lee"}
    assert exams.ehr_author(local) == {"type": "Practitioner", "identifier": local["identifier"],
                                       "display": "Dr Ann Lee"}
    assert exams.ehr_author(signoff.Signer("Dr Ann Lee", "Practitioner/u-1").as_reference()) \
        == {"type": "Practitioner", "display": "Dr Ann Lee"}
    assert exams.ehr_author(None) is None
