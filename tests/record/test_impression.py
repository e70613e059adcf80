"""The clinician's impression and plan as a use case: saved with the draft (refused on a
stale version, refused by field when outside the vocabulary), signed with the revision,
carried into an amendment (and cleared there when the clinician clears it), restored
when the amendment is dropped, and delivered to the EHR with the record."""
from __future__ import annotations

import base64

import pytest

from plugin.core import terminology as t
from plugin.decision import impression
from plugin.errors import ConflictError, InputError
from plugin.record import exams
from tests.record.test_write_audit import BY, NOW, PATIENT, SIGNER
from tests.support import pdfs
from tests.support.tablet import AMENDED, ANSWERS

#: ANSWERS suggest lumbar radiculopathy and routine physiotherapy.
PLAN = {"diagnosis": {"condition": "lumbar-radiculopathy", "status": "provisional"},
        "referrals": {"physiotherapy": {"order": True, "priority": "routine"},
                      "mri-lumbar-spine": {"order": True, "priority": "routine",
                                           "reason": "Pain for twelve weeks despite care."}},
        "note": "Reassess after six weeks of physiotherapy."}


def _decided(stored):
    """The clinician's decision as stored, without how it read at the signature."""
    return {k: v for k, v in (stored or {}).items() if k != "outcomes"}


def _draft(store, kb):
    patient = exams.add_patient(store, PATIENT, by=BY)
    exam = exams.begin(store, kb, patient, now=NOW, by=BY)
    form = kb.form_for(exam.questionnaire)
    exam, _ = exams.save_draft(store, form, exam, patient, expected_version=exam.version,
                               answers=ANSWERS, now=NOW, by=BY)
    return patient, exam, form


def _sign(store, kb, exam, patient, ehr_base=None):
    exams.sign(store, kb, exam, patient, expected_version=exam.version, signer=SIGNER,
               now=NOW, ehr_base=ehr_base, by=BY)
    return store.exam(exam.id)


def test_the_plan_is_saved_with_the_draft_and_signed_with_the_revision(store, kb) -> None:
    patient, exam, _ = _draft(store, kb)
    saved = exams.save_impression(store, kb, exam, expected_version=exam.version,
                                  impression=PLAN, by=BY)
    assert saved.version == exam.version + 1 and saved.impression == PLAN
    with pytest.raises(ConflictError):  # a second tablet, one version behind
        exams.save_impression(store, kb, exam, expected_version=exam.version,
                              impression={}, by=BY)
    _sign(store, kb, saved, patient)
    kept = store.revision(exam.id, 1).impression
    assert _decided(kept) == PLAN
    # how it read against the suggestions, frozen with the signature
    assert kept["outcomes"] == {
        "diagnosis": "accepted", "suggested_conditions": ["lumbar-radiculopathy"],
        "referrals": [
            {"service": "physiotherapy", "outcome": "accepted", "suggested_priority": "routine",
             "priority": "routine", "reason": None},
            {"service": "mri-lumbar-spine", "outcome": "added", "suggested_priority": None,
             "priority": "routine", "reason": "Pain for twelve weeks despite care."}]}


def test_an_amendment_carries_the_plan_and_can_clear_it(store, kb) -> None:
    patient, exam, form = _draft(store, kb)
    exam = exams.save_impression(store, kb, exam, expected_version=exam.version,
                                 impression=PLAN, by=BY)
    exam = _sign(store, kb, exam, patient)
    exam = exams.amend(store, form, exam, patient, expected_version=exam.version,
                       reason="re-measured", now=NOW, by=BY)
    assert _decided(exam.impression) == PLAN  # carried: the clinician starts from it
    exam = exams.save_impression(store, kb, exam, expected_version=exam.version,
                                 impression={"note": ""}, by=BY)
    assert exam.impression is None
    exam, _ = exams.save_draft(store, form, exam, patient, expected_version=exam.version,
                               answers=AMENDED, now=NOW, by=BY)
    _sign(store, kb, exam, patient)
    assert _decided(store.revision(exam.id, 1).impression) == PLAN  # kept unchanged
    assert _decided(store.revision(exam.id, 2).impression) == {}


def test_dropping_an_amendment_restores_the_signed_plan(sqlite_store, kb) -> None:
    store = sqlite_store
    patient, exam, form = _draft(store, kb)
    exam = exams.save_impression(store, kb, exam, expected_version=exam.version,
                                 impression=PLAN, by=BY)
    exam = _sign(store, kb, exam, patient)
    exam = exams.amend(store, form, exam, patient, expected_version=exam.version,
                       reason="typo", now=NOW, by=BY)
    exam = exams.save_impression(store, kb, exam, expected_version=exam.version,
                                 impression={"note": "changed my mind"}, by=BY)
    exams.cancel_amendment(store, exam, expected_version=exam.version, by=BY)
    assert _decided(store.exam(exam.id).impression) == PLAN


@pytest.mark.parametrize("impression, field", [
    ({"diagnosis": {"condition": "gout", "status": "confirmed"}},
     "impression.diagnosis.condition"),
    ({"diagnosis": {"condition": "hamstring-strain", "status": "maybe"}},
     "impression.diagnosis.status"),
    ({"referrals": {"acupuncture": {"order": True, "priority": "routine"}}},
     "impression.referrals.acupuncture"),
    ({"referrals": {"physiotherapy": {"order": True, "priority": "whenever"}}},
     "impression.referrals.physiotherapy.priority"),
    ({"note": "x" * 1001}, "impression.note"),
    ({"plan": "anything"}, "impression.plan"),
])
def test_bad_input_is_refused_by_field_and_nothing_is_saved(sqlite_store, kb, impression,
                                                            field) -> None:
    _, exam, _ = _draft(sqlite_store, kb)
    with pytest.raises(InputError) as refused:
        exams.save_impression(sqlite_store, kb, exam, expected_version=exam.version,
                              impression=impression, by=BY)
    assert refused.value.status == 422 and field in [e for e, _ in refused.value.issues]
    assert sqlite_store.exam(exam.id).version == exam.version


def test_signing_asks_why_a_suggestion_is_dropped_or_a_referral_added(sqlite_store, kb) -> None:
    store = sqlite_store
    patient, exam, _ = _draft(store, kb)
    exam = exams.save_impression(store, kb, exam, expected_version=exam.version, by=BY,
                                 impression={"referrals": {
                                     "physiotherapy": {"order": False},
                                     "sports-medicine": {"order": True, "priority": "routine"}}})
    with pytest.raises(InputError) as refused:
        _sign(store, kb, exam, patient)
    assert [e for e, _ in refused.value.issues] == [
        "impression.referrals.physiotherapy.reason", "impression.referrals.sports-medicine.reason"]
    assert store.exam(exam.id).state == "draft" and store.revisions(exam.id) == []


def test_signing_without_an_impression_is_allowed_and_records_none(sqlite_store, kb) -> None:
    patient, exam, _ = _draft(sqlite_store, kb)
    _sign(sqlite_store, kb, exam, patient)
    kept = sqlite_store.revision(exam.id, 1).impression
    assert impression.read(kept).empty and kept["outcomes"]["diagnosis"] == "none"
    assert [r["outcome"] for r in kept["outcomes"]["referrals"]] == ["undecided"]


def test_the_delivery_carries_the_clinicians_resources(sqlite_store, kb) -> None:
    store = sqlite_store
    patient, exam, _ = _draft(store, kb)
    exam = exams.save_impression(store, kb, exam, expected_version=exam.version,
                                 impression=PLAN, by=BY)
    _sign(store, kb, exam, patient, ehr_base="http://ehr.test/fhir")
    from sqlalchemy import select
    from plugin.adapters.tables import outbox
    from plugin.record import freeze
    # the summary is rendered after the signature; the delivery carries those bytes
    assert freeze.render_pending(store, worker_id="tests", lease_seconds=60) == 1
    with store.engine.connect() as conn:
        payload = conn.execute(select(outbox.c.payload)).scalar_one()
    mine = {e["resource"]["identifier"][0]["value"].rsplit("/", 1)[1]: e
            for e in payload["entry"] if isinstance(e["resource"].get("identifier"), list)
            and e["resource"]["identifier"][0]["system"] in (t.ID_CLINICIAN_CONDITION,
                                                             t.ID_CLINICIAN_REFERRAL)}
    assert set(mine) == {"lumbar-radiculopathy", "physiotherapy", "mri-lumbar-spine"}
    assert all(e["request"]["ifNoneExist"].startswith("identifier=") for e in mine.values())
    condition = mine["lumbar-radiculopathy"]["resource"]
    assert "reference" not in condition["asserter"]  # our Practitioner id means nothing there
    assert condition["note"] == [{"text": PLAN["note"]}]
    (document,) = [e["resource"] for e in payload["entry"]
                   if e["resource"]["resourceType"] == "DocumentReference"]
    text = " ".join(pdfs.text_of(base64.b64decode(
        document["content"][0]["attachment"]["data"])).split())
    # the summary printed with the signed plan, before (apart from) the suggestions
    assert text.index("Clinician's impression") < text.index("Differential (decision support)")
    assert "Working diagnosis: Lumbar radiculopathy (disc-related sciatica) (provisional" in text
    assert "MRI of the lumbar spine" in text and "added (not suggested)" in text
