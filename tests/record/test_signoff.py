"""Signing: strict validation, a completed then amended response under one identifier,
and a Provenance naming signer, time and reason."""
from __future__ import annotations

import datetime as dt

import pytest

from plugin.core import fhir_models
from plugin.record import signoff
from plugin.errors import AnswerError, InputError

PATIENT = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Silva", "given": ["Ana"]}],
           "birthDate": "1986-03-14"}
WHEN = dt.datetime(2026, 11, 21, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))


def _sign(kb, raw, **kwargs):
    options = {"record_id": "exam-1", "patient": PATIENT, "signer": signoff.Signer("Dr Lee"),
               "signed_at": WHEN, "revision": 1}
    options.update(kwargs)
    return signoff.sign(kb, raw, **options)


def test_first_signature_completes_the_record(kb) -> None:
    signed = _sign(kb, {"slr.left.onset-angle": 40})
    qr = signed.response
    assert qr["status"] == "completed" and qr["authored"] == "2026-11-21T08:30:00+00:00"
    assert qr["author"] == {"display": "Dr Lee"}
    assert qr["identifier"]["value"] == "exam-1" and qr["subject"]["reference"] == "Patient/p1"
    assert signed.exam.answers["patient.age-years"] == (40,)  # filled from the birth date
    prov = signed.provenance
    assert prov["activity"]["coding"][0]["code"] == "CREATE" and "reason" not in prov
    assert prov["target"][0]["identifier"]["value"] == "exam-1"
    assert prov["agent"][0]["who"] == {"display": "Dr Lee"}
    assert fhir_models.validate(qr) == [] and fhir_models.validate(prov) == []


def test_an_amendment_keeps_the_identifier_and_needs_a_reason(kb) -> None:
    with pytest.raises(InputError, match="needs a reason"):
        _sign(kb, {}, revision=2, reason="  ")
    signed = _sign(kb, {"slr.left.onset-angle": 45}, revision=2, reason="Angle misread")
    assert signed.response["status"] == "amended"
    assert signed.response["identifier"]["value"] == "exam-1"
    assert signed.provenance["reason"] == [{"text": "Angle misread"}]
    assert signed.provenance["activity"]["coding"][0]["code"] == "UPDATE"


@pytest.mark.parametrize("signer", ["", "   ", None, "x" * 501])
def test_a_signer_name_is_required_and_short(kb, signer) -> None:
    with pytest.raises(InputError):
        _sign(kb, {}, signer=signoff.Signer(signer))


def test_any_problem_blocks_signing(kb) -> None:
    with pytest.raises(AnswerError) as caught:
        _sign(kb, {"slr.left.onset-angle": 400, "pain.current": "x"})
    assert set(caught.value.errors) == {"slr.left.onset-angle", "pain.current"}
