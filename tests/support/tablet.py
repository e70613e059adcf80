"""Writing exams through the store as the tablet does, for the FHIR API tests
(tests/web/test_fhir_*.py): a patient, a draft, a signature, an amendment."""
from __future__ import annotations

import datetime as dt
from typing import Any

from plugin.adapters import store as store_mod
from plugin.core import drafts, patient as patient_mod
from plugin.record import observations, signoff
from plugin.core.responses import Context

ANSWERS = {"slr.left.onset-angle": 40, "slr.left.response": "leg-pain-below-knee",
           "history.onset": "sudden", "history.pop": True}
#: ANSWERS with the angle re-measured (40° -> 55°).
AMENDED = {**ANSWERS, "slr.left.onset-angle": 55}
MARCH = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.timezone.utc)
MAY = dt.datetime(2026, 5, 1, 9, 0, tzinfo=dt.timezone.utc)
JUNE = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.timezone.utc)


def patient(app: Any, family: str = "Silva", mrn: str = "MRN-1") -> store_mod.PatientRecord:
    return store_mod.from_app(app).add_patient({
        "resourceType": "Patient", "name": [{"family": family, "given": ["Ana"]}],
        "birthDate": "1986-03-14", "identifier": [{"system": "urn:mrn", "value": mrn}]})


def draft_qr(form: Any, exam_id: str, patient: store_mod.PatientRecord,
             answers: dict[str, Any]) -> dict[str, Any]:
    """The in-progress QuestionnaireResponse the tablet saves with a draft."""
    context = Context(subject=patient_mod.reference(patient.resource), status="in-progress",
                      authored=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      identifier=exam_id)
    return drafts.response(form, drafts.check(form, answers), context)


def draft(app: Any, form: Any, patient: store_mod.PatientRecord,
          answers: dict[str, Any] = ANSWERS) -> store_mod.ExamRecord:
    store = store_mod.from_app(app)
    exam = store.create_exam(patient.id, form.canonical, answers=answers, draft={})
    return store.save_draft(exam.id, expected_version=exam.version, answers=answers,
                            draft=draft_qr(form, exam.id, patient, answers))


def sign(app: Any, kb: Any, exam: store_mod.ExamRecord, patient: store_mod.PatientRecord,
         when: dt.datetime, answers: dict[str, Any] = ANSWERS, *,
         materialise: bool = True) -> store_mod.ExamRecord:
    """Sign as ``record.exams.sign`` does: the revision with its Observations (none with
    ``materialise=False``: a revision signed before they were stored)."""
    signed = signoff.sign(kb, answers, record_id=exam.id, patient=patient.resource,
                          signer=signoff.Signer("Dr Lee"), signed_at=when,
                          revision=exam.revisions + 1, reason=exam.amend_reason)
    served = observations.of_revision(kb, exam_id=exam.id, patient_id=patient.id,
                                      number=exam.revisions + 1, response=signed.response,
                                      signed_at=when) if materialise else None
    return store_mod.from_app(app).sign(
        exam.id, expected_version=exam.version, answers=answers, response=signed.response,
        provenance=signed.provenance, signed_by="Dr Lee", signed_at=when,
        observations=served)


def begin_amendment(app: Any, form: Any, exam: store_mod.ExamRecord,
                    patient: store_mod.PatientRecord) -> store_mod.ExamRecord:
    return store_mod.from_app(app).begin_amendment(
        exam.id, expected_version=exam.version, reason="Angle re-measured",
        draft=draft_qr(form, exam.id, patient, dict(exam.answers)))


def amended(app: Any, kb: Any, form: Any, exam: store_mod.ExamRecord,
            patient: store_mod.PatientRecord, when: dt.datetime) -> store_mod.ExamRecord:
    """``exam`` amended to AMENDED and signed again at ``when``."""
    exam = begin_amendment(app, form, exam, patient)
    return sign(app, kb, exam, patient, when, AMENDED)


def ana_and_rui(app: Any, kb: Any, form: Any) -> tuple[
        store_mod.PatientRecord, store_mod.PatientRecord, store_mod.ExamRecord,
        store_mod.ExamRecord, store_mod.ExamRecord]:
    """Ana (MRN-1) with an exam signed in March (completed) and one signed in May and
    amended in June (amended), Rui (MRN-2) with a draft only (in-progress, saved now):
    ``(ana, rui, march, june, draft)``."""
    ana, rui = patient(app, "Silva", "MRN-1"), patient(app, "Costa", "MRN-2")
    march = sign(app, kb, draft(app, form, ana), ana, MARCH)
    june = amended(app, kb, form, sign(app, kb, draft(app, form, ana), ana, MAY), ana, JUNE)
    return ana, rui, march, june, draft(app, form, rui)
