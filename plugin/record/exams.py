"""The exam record's use cases: add a patient, begin, save a draft, sign, amend, cancel
an amendment, queue for delivery again, choose the EHR's patient.

Every write takes ``by`` (``trail.By``: who asks, from where) and leaves one AuditEvent,
appended by the store in the write's own transaction (``trail``).

Each needs the pure core and engine *and* the store, so none belongs to either: the
tablet pages, the SMART launch and the CLI call these and only render what comes back.
Errors are the project's family (``ConflictError``, ``LockedError``, ``InputError``,
``AnswerError``); each edge renders them its own way.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .. import __version__
from ..adapters import outbox, smart, store as store_mod
from ..adapters.documents import render as documents
from ..core import drafts, patient as patient_mod, populate
from ..core.responses import Context
from ..core.documents import Document
from . import freeze, pipeline, signoff, trail
from .trail import By


def draft_context(exam_id: str, encounter: Mapping[str, Any] | None,
                  patient_record: store_mod.PatientRecord, when: dt.datetime) -> Context:
    """Who, where and when of a draft: the patient, the EHR encounter (when launched
    from one), the time of the last change, our identifier."""
    return Context(subject=patient_mod.reference(patient_record.resource),
                   encounter=encounter, authored=when.isoformat(timespec="seconds"),
                   status="in-progress", identifier=exam_id)


def draft_response(form: Any, checked: drafts.Checked, exam_id: str,
                   encounter: Mapping[str, Any] | None,
                   patient_record: store_mod.PatientRecord, now: dt.datetime) -> dict[str, Any]:
    """The in-progress QuestionnaireResponse stored with every save."""
    return drafts.response(form, checked, draft_context(exam_id, encounter, patient_record, now))


def add_patient(store: store_mod.Store, resource: Mapping[str, Any], *,
                by: By) -> store_mod.PatientRecord:
    """Register a patient typed on the tablet (a FHIR Patient)."""
    return store.add_patient(resource, audit=lambda record: [trail.event(
        by, "create", resource=f"Patient/{record.id}", patient_id=record.id,
        what="patient registered")])


def link_ehr_patient(store: store_mod.Store, ehr_base: str, ehr_id: str,
                     resource: Mapping[str, Any], *, by: By) -> store_mod.PatientRecord:
    """The local patient for the EHR's patient of a SMART launch: created on the first
    launch, refreshed from the EHR's copy on later ones (``Store.link_patient``)."""
    def events(record: store_mod.PatientRecord, created: bool) -> list[dict[str, Any]]:
        return [trail.event(by, "create" if created else "update",
                            resource=f"Patient/{record.id}", patient_id=record.id,
                            what="patient brought from the EHR" if created
                            else "patient refreshed from the EHR")]
    return store.link_patient(ehr_base, ehr_id, resource, audit=events)


def begin(store: store_mod.Store, kb: Any, patient_record: store_mod.PatientRecord, *,
          now: dt.datetime, by: By, encounter: Mapping[str, Any] | None = None,
          launch_id: str | None = None) -> store_mod.ExamRecord:
    """A new exam for the patient, prefilled from the Patient (age from birthDate).

    Launched again from the EHR for the same encounter, the exam already begun there
    (and not yet signed) is resumed instead of a second one being started."""
    if encounter is not None:
        for existing in store.exams_for(patient_record.id):
            if existing.state == "draft" and existing.encounter == encounter:
                return existing
    form = kb.forms[pipeline.DEFAULT_FORM]
    # SDC $populate's own work: the same prefill the FHIR API offers integrators
    raw = populate.populate(form, patient_record.resource, on=now.date()).answers
    exam_id = str(uuid.uuid4())  # chosen here: the draft response names it (one write)
    draft = draft_response(form, drafts.check(form, raw), exam_id, encounter, patient_record, now)
    return store.create_exam(patient_record.id, form.canonical, answers=raw, draft=draft,
                             encounter=encounter, launch_id=launch_id, exam_id=exam_id,
                             audit=trail.exam_write(by, "create", "exam begun"))


def save_draft(store: store_mod.Store, form: Any, exam: store_mod.ExamRecord,
               patient_record: store_mod.PatientRecord, *, expected_version: int,
               answers: Mapping[str, Any], now: dt.datetime, by: By
               ) -> tuple[store_mod.ExamRecord, drafts.Checked]:
    """Store the working answers exactly as entered (a wrong value is kept and reported,
    never dropped) with their in-progress response; refused on a stale version."""
    checked = drafts.check(form, answers)
    saved = store.save_draft(exam.id, expected_version=expected_version, answers=answers,
                             draft=draft_response(form, checked, exam.id, exam.encounter,
                                                  patient_record, now),
                             audit=trail.exam_write(by, "update", "draft saved"))
    return saved, checked


def sign(store: store_mod.Store, kb: Any, exam: store_mod.ExamRecord,
         patient_record: store_mod.PatientRecord, *, expected_version: int,
         signer: signoff.Signer, now: dt.datetime, ehr_base: str | None,
         by: By) -> signoff.Signed:
    """Sign the working answers as the next revision (an amendment when one is open),
    frozen (``freeze``: the assessment as reviewed, what the documents are made from)
    and queued for the EHR (when delivery is on, ``ehr_base``) in the same transaction.
    The documents are rendered after, outside the request (``freeze.render_pending``):
    signing never waits for a PDF, and the delivery waits for its documents."""
    signed = signoff.sign(kb, exam.answers, record_id=exam.id,
                          patient=patient_record.resource, encounter=exam.encounter,
                          signer=signer, signed_at=now, revision=exam.revisions + 1,
                          reason=exam.amend_reason)
    assessment = pipeline.assess_exam(kb, signed.exam).as_json()
    frozen = freeze.freeze(kb, signed.exam, assessment=assessment,
                           patient=patient_record.resource,
                           clinician=signed.response["author"]["display"], now=now)
    delivery = (_delivery(kb, signed, patient_record, now, ehr_base) if ehr_base else None)
    store.sign(exam.id, expected_version=expected_version, answers=exam.answers,
               response=signed.response, provenance=signed.provenance,
               signed_by=signer.display, signed_at=now, delivery=delivery,
               frozen=(frozen.knowledge_version, frozen.as_json()),
               audit=trail.exam_write(by, "update", "amendment signed" if exam.revisions
                                      else "signed", revision=True))
    return signed


#: The summary's place in the delivery until it is rendered: its DocumentReference
#: (identifier, date, context, place in the Provenance) is made with the signature and
#: its attachment filled with the rendered bytes (``freeze.render_pending``) before the
#: outbox may send it (``adapters.frozen.pending_for``).
PENDING_PDF = b"%PDF-1.7\n% the clinician summary, rendered after the signature\n"


def _delivery(kb: Any, signed: signoff.Signed, patient_record: store_mod.PatientRecord,
              now: dt.datetime, ehr_base: str) -> dict[str, Any]:
    """The record the EHR receives: the transaction Bundle with the clinician summary
    as a DocumentReference (the part every EHR accepts, whatever its profile)."""
    exam = replace(signed.exam, context=replace(
        signed.exam.context, subject=ehr_subject(patient_record, ehr_base),
        author=ehr_author(signed.exam.context.author)))
    summary = Document("summary", documents.SUMMARY_TITLE, PENDING_PDF)
    return pipeline.record(kb, exam, plugin_version=__version__, recorded=now,
                           documents=[summary])


def ehr_subject(patient_record: store_mod.PatientRecord, ehr_base: str) -> dict[str, Any]:
    """The patient as the EHR knows them: its own ``Patient/<id>`` for a patient who came
    from that EHR by a SMART launch, else a logical reference by identifier (our local
    id means nothing there), else (no identifier) only the name."""
    reference = patient_mod.reference(patient_record.resource)
    reference.pop("reference", None)
    if patient_record.ehr_id and smart.base_key(patient_record.ehr_base or "") == \
            smart.base_key(ehr_base):
        reference["reference"] = f"Patient/{patient_record.ehr_id}"
    return reference


def ehr_author(author: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The signer as the EHR can know them: our ``Practitioner/<user id>`` means nothing
    there (a strict EHR refuses a reference it cannot resolve), so the EHR gets the
    Practitioner's identifier, when the user has one, and the name."""
    if author is None:
        return None
    return {k: v for k, v in author.items() if k not in ("reference",)}


def amend(store: store_mod.Store, form: Any, exam: store_mod.ExamRecord,
          patient_record: store_mod.PatientRecord, *, expected_version: int,
          reason: Any, now: dt.datetime, by: By) -> store_mod.ExamRecord:
    """Reopen a signed exam for changes; the reason (required) goes with the next
    signature."""
    reason = signoff.text(reason, "reason", "An amendment needs a reason.")
    checked = drafts.check(form, exam.answers)
    return store.begin_amendment(exam.id, expected_version=expected_version, reason=reason,
                                 draft=draft_response(form, checked, exam.id, exam.encounter,
                                                      patient_record, now),
                                 audit=trail.exam_write(by, "update", "amendment begun"))


def cancel_amendment(store: store_mod.Store, exam: store_mod.ExamRecord, *,
                     expected_version: int, by: By) -> store_mod.ExamRecord:
    """Drop an amendment in progress: back to the answers of the latest revision."""
    return store.cancel_amendment(exam.id, expected_version=expected_version,
                                  audit=trail.exam_write(by, "update", "amendment cancelled"))


def send_again(store: store_mod.Store, exam_id: str, *, by: By) -> Any:
    """A delivery that could not be sent is queued again; only what is not in the EHR
    yet goes. None when there was nothing to send again (and nothing is audited)."""
    exam = store.exam(exam_id)
    return outbox.requeue(store, exam_id, audit=lambda _: trail.exam_write(
        by, "update", "delivery queued again")(exam))


def choose_ehr_patient(store: store_mod.Store, exam_id: str, ehr_patient_id: str, *,
                       by: By) -> Any:
    """A person names the EHR's patient for a held delivery (never chosen by the plugin
    on a name). None when no delivery was waiting for one (and nothing is audited)."""
    exam = store.exam(exam_id)
    return outbox.choose_patient(store, exam_id, f"Patient/{ehr_patient_id}",
                                 audit=lambda _: trail.exam_write(
                                     by, "update", "EHR patient chosen for delivery")(exam))
