"""The exam record's use cases: add a patient, begin (an initial exam or a follow-up
visit in its episode), save a draft, sign, amend, cancel an amendment, queue for
delivery again, choose the EHR's patient.

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
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from .. import __version__
from ..adapters import outbox, smart, store as store_mod
from ..adapters.documents import render as documents
from ..core import carry_forward, drafts, patient as patient_mod, populate
from ..core import datetimes, responses
from ..core.responses import Context
from ..core.documents import Document
from ..decision import impression as impression_mod
from ..errors import DuplicatePatientError, InputError
from ..knowledge import FOLLOW_UP_FORM
from . import freeze, observations, pipeline, progress, proms as proms_mod, signoff, trail
from . import visit_proms, visits
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
                   patient_record: store_mod.PatientRecord, now: dt.datetime,
                   one_step: frozenset[str] = frozenset(),
                   carried: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The in-progress QuestionnaireResponse stored with every save (with the sections
    recorded in one step and the answers carried from an earlier exam marked on it:
    that is where those facts are kept)."""
    return drafts.response(form, checked, draft_context(exam_id, encounter, patient_record, now),
                           one_step, carried)


def carried_answers(exam: store_mod.ExamRecord) -> dict[str, Mapping[str, Any]]:
    """The draft's answers still marked as carried from an earlier exam."""
    return responses.carried_of(exam.draft)


def _previous_signed(store: store_mod.Store, patient_id: str
                     ) -> tuple[store_mod.ExamRecord, store_mod.Revision] | None:
    """The patient's most recently signed exam and its latest revision, if any."""
    signed = [(e, store.revision(e.id, e.revisions)) for e in store.exams_for(patient_id)
              if e.revisions]
    return max(signed, key=lambda pair: pair[1].signed_at, default=None)


def one_step_sections(exam: store_mod.ExamRecord) -> frozenset[str]:
    """The sections of the exam's draft recorded in one step (none once signed)."""
    return responses.one_step_of(exam.draft)


def add_patient(store: store_mod.Store, resource: Mapping[str, Any], *,
                by: By, confirmed: bool = False) -> store_mod.PatientRecord:
    """Register a patient typed on the tablet (a FHIR Patient). Never a second record
    for one person: an identifier already on file is refused, and the same name with the
    same birth date needs ``confirmed`` (the person at the tablet says it is someone
    else); ``DuplicatePatientError`` names the patients on file."""
    same_identifier, same_person = store.same_patients(resource)
    if same_identifier:
        raise DuplicatePatientError("A patient with this identifier is already on file.",
                                    same_identifier=same_identifier)
    if same_person and not confirmed:
        raise DuplicatePatientError("A patient with the same name and birth date is already "
                                    "on file.", same_person=same_person)
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
    return _begin(store, kb.forms[pipeline.DEFAULT_FORM], patient_record,
                  _previous_signed(store, patient_record.id), now=now, by=by,
                  encounter=encounter, launch_id=launch_id)


def begin_follow_up(store: store_mod.Store, kb: Any, exam: store_mod.ExamRecord, *,
                    now: dt.datetime, by: By) -> store_mod.ExamRecord:
    """A follow-up visit in ``exam``'s episode (``exam``: any signed exam of it): a
    draft of the follow-up Questionnaire, prefilled from the Patient and with the history
    carried from the episode's latest signed visit (``carry_forward``: side, imaging,
    injections, shockwave), never a finding that must be re-measured. An unsigned exam
    is refused: there is nothing signed to follow up yet. A follow-up already begun in
    the episode and not signed is resumed (a second tap never starts two)."""
    if not exam.revisions:
        raise InputError("Only a signed exam can be followed up: sign this exam first.",
                         status=409, code="business-rule")
    episode_id = exam.episode_id or exam.id
    visits = store.episode_exams(episode_id)
    form = kb.forms[FOLLOW_UP_FORM]
    for visit in visits:
        if visit.state == "draft" and not visit.revisions and visit.questionnaire == \
                form.canonical:
            return visit
    signed = [(v, store.revision(v.id, v.revisions)) for v in visits if v.revisions]
    latest = max(signed, key=lambda pair: pair[1].signed_at)
    return _begin(store, form, store.patient(exam.patient_id), latest, now=now, by=by,
                  encounter=None, launch_id=None, episode_id=episode_id)


def _begin(store: store_mod.Store, form: Any, patient_record: store_mod.PatientRecord,
           previous: tuple[store_mod.ExamRecord, store_mod.Revision] | None, *,
           now: dt.datetime, by: By, encounter: Mapping[str, Any] | None,
           launch_id: str | None, episode_id: str | None = None) -> store_mod.ExamRecord:
    """A draft of ``form``: $populate's prefill and the history carried from
    ``previous`` (a signed exam and its latest revision), marked as carried."""
    # SDC $populate's own work: the same prefill the FHIR API offers integrators
    raw = dict(populate.populate(form, patient_record.resource, on=now.date()).answers)
    # the history from the last signed exam, marked as carried (carry_forward)
    carried: dict[str, Mapping[str, Any]] = {}
    read: list[Mapping[str, Any]] = []
    if previous is not None:
        exam, revision = previous
        taken = carry_forward.carry(form, revision.answers)
        ref = carry_forward.source(exam.id, revision.signed_at.date().isoformat())
        carried = {k: ref for k in taken}
        raw.update(taken)
        if taken:  # its answers were read to begin this one: in the trail too
            read = [trail.event(by, "vread", resource=f"QuestionnaireResponse/{exam.id}/"
                                f"_history/{revision.number}", patient_id=patient_record.id,
                                what="history carried to a new exam")]
    exam_id = str(uuid.uuid4())  # chosen here: the draft response names it (one write)
    draft = draft_response(form, drafts.check(form, raw), exam_id, encounter, patient_record,
                           now, carried=carried)
    begun = trail.exam_write(by, "create", "follow-up begun" if episode_id else "exam begun")
    return store.create_exam(patient_record.id, form.canonical, answers=raw, draft=draft,
                             encounter=encounter, launch_id=launch_id, exam_id=exam_id,
                             episode_id=episode_id,
                             audit=lambda record: [*begun(record), *read])


def save_draft(store: store_mod.Store, form: Any, exam: store_mod.ExamRecord,
               patient_record: store_mod.PatientRecord, *, expected_version: int,
               answers: Mapping[str, Any], now: dt.datetime, by: By,
               one_step: frozenset[str] | None = None,
               carried: Mapping[str, Mapping[str, Any]] | None = None
               ) -> tuple[store_mod.ExamRecord, drafts.Checked]:
    """Store the working answers exactly as entered (a wrong value is kept and reported,
    never dropped) with their in-progress response; refused on a stale version.
    ``one_step``: the sections recorded in one step (default: as the draft had them)."""
    checked = drafts.check(form, answers)
    if one_step is None:
        one_step = one_step_sections(exam)
    before = carried_answers(exam)  # a mark may be dropped here, never added
    carried = {k: v for k, v in (before if carried is None else carried).items()
               if k in before}
    saved = store.save_draft(exam.id, expected_version=expected_version, answers=answers,
                             draft=draft_response(form, checked, exam.id, exam.encounter,
                                                  patient_record, now, one_step, carried),
                             audit=trail.exam_write(by, "update", "draft saved"))
    return saved, checked


def save_impression(store: store_mod.Store, kb: Any, exam: store_mod.ExamRecord, *,
                    expected_version: int, impression: Any, by: By) -> store_mod.ExamRecord:
    """Store the clinician's working impression and plan (autosaved like the answers,
    refused on a stale version). Anything outside the decision vocabulary is refused,
    by field, and nothing is saved; a missing reason is kept and asked for at signing."""
    decided = impression_mod.load(kb.decision, impression)
    return store.save_impression(exam.id, expected_version=expected_version,
                                 impression=decided.as_json() or None,
                                 audit=trail.exam_write(by, "update", "impression saved"))


def impression_of(kb: Any, stored: Mapping[str, Any] | None) -> impression_mod.Impression:
    """A stored impression and plan, read back (checked again: the vocabulary may have
    changed since it was saved)."""
    return impression_mod.load(kb.decision, stored)


def sign(store: store_mod.Store, kb: Any, exam: store_mod.ExamRecord,
         patient_record: store_mod.PatientRecord, *, expected_version: int,
         signer: signoff.Signer, now: dt.datetime, ehr_base: str | None,
         by: By, time_zone: str = "UTC", clinic_contact: str = "",
         ehr_practitioner: str | None = None) -> signoff.Signed:
    """Sign the working answers as the next revision (an amendment when one is open),
    frozen (``freeze``: the assessment as reviewed, what the documents are made from,
    the clinician's impression and plan) and queued for the EHR (when delivery is on,
    ``ehr_base``) in the same transaction, with its Observations as the FHIR API serves
    them: from then on they are the patient's current ones. The documents are rendered
    after, outside the request (``freeze.render_pending``): signing never waits for a
    PDF, and the delivery waits for its documents. They print times in the clinic's
    ``time_zone`` and the handout the ``clinic_contact`` line. ``ehr_practitioner`` is
    the signer's own Practitioner at that EHR (the fhirUser of their launch), which the
    EHR's copy names.

    The visit's outcome measures (``record.proms.completed``: a PROM still unfinished
    refuses the signature, naming the instrument) are checked and scored again here and
    signed with it (``Store.sign`` refuses the signature if the visit's PROMs changed
    meanwhile); they go into the frozen revision with their meaning as shown (the change since the
    patient's earlier scores), the record Bundle and the EHR's delivery (each response
    and its survey Observations, identified by this exam, so an amendment carries the
    same ones again), the stored Observations the FHIR API searches, and the decision
    support (a STarT Back band is a finding)."""
    proms = proms_mod.completed(store, kb, exam.id)
    scored, lines = visit_proms.shown(store, kb, exam, proms, time_zone=time_zone)
    signed = signoff.sign(kb, exam.answers, record_id=exam.id,
                          patient=patient_record.resource, encounter=exam.encounter,
                          signer=signer, signed_at=now, revision=exam.revisions + 1,
                          reason=exam.amend_reason, one_step=one_step_sections(exam),
                          form=kb.form_for(exam.questionnaire))
    impression = impression_of(kb, exam.impression)
    today = datetimes.local_day(now, time_zone)  # the visit's day at the clinic
    prior = visits.prior_visits(store, exam, time_zone=time_zone)  # a follow-up's episode
    assessed = pipeline.assess_exam(kb, signed.exam, scored, prior=prior, on=today)
    suggested = pipeline.suggested_referrals(assessed)
    missing = impression_mod.missing_reasons(impression, suggested)
    if missing:
        raise InputError(missing[0][1], issues=missing, status=422, code="required")
    served = observations.of_revision(kb, exam_id=exam.id, patient_id=exam.patient_id,
                                      number=exam.revisions + 1, response=signed.response,
                                      signed_at=now, proms=scored)
    decided = impression_mod.signed(kb.decision, impression, suggested,
                                    [c.condition.id for c in assessed.differential
                                     if c.suggested])
    assessment = assessed.as_json()
    charted = progress.progress(store, kb, exam.patient_id, time_zone=time_zone,
                                pending=progress.Pending(
                                    exam_id=exam.id, questionnaire=exam.questionnaire,
                                    signed_at=now, answers=exam.answers,
                                    observations=[r.resource for r in served],
                                    assessment=assessment, impression=decided))
    frozen = freeze.freeze(kb, signed.exam, assessment=assessment,
                           patient=patient_record.resource,
                           clinician=signed.response["author"]["display"], now=now,
                           revision=exam.revisions + 1, reason=exam.amend_reason,
                           time_zone=time_zone, clinic_contact=clinic_contact,
                           impression=impression,
                           episode=_episode(kb, store, prior, exam, assessed, impression, today,
                                            [s for _, s in scored]),
                           progress=charted, proms=[s for _, s in scored],
                           prom_lines=lines)
    delivery = (_delivery(kb, signed, patient_record, now, ehr_base,
                          ehr_practitioner=ehr_practitioner, impression=impression,
                          assessed=assessed, proms=scored)
                if ehr_base else None)
    store.sign(exam.id, expected_version=expected_version, answers=exam.answers,
               response=signed.response, provenance=signed.provenance,
               signed_by=signer.display, signed_at=now, delivery=delivery,
               observations=served, frozen=(frozen.knowledge_version, frozen.as_json()),
               audit=trail.exam_write(by, "update", "amendment signed" if exam.revisions
                                      else "signed", revision=True),
               impression=decided,
               prom_ids=[p["id"] for p in proms])
    return signed


def _episode(kb: Any, store: store_mod.Store, prior: list[Any], exam: store_mod.ExamRecord,
             assessed: Any, impression: impression_mod.Impression, today: dt.date,
             proms: Sequence[Mapping[str, Any]]) -> Any:
    """A follow-up's "Since last visit" view for its record and documents
    (``visits.episode_view``), its outcome measures compared with the last visit's."""
    ranked = assessed.differential
    return visits.episode_view(kb, prior, exam.answers, exam=exam, on=today,
                               top_condition=ranked[0].condition.id if ranked else None,
                               impression=(impression.condition,) if impression.condition
                               else (), proms=proms,
                               earlier_proms=visits.previous_proms(store, prior))


#: The summary's place in the delivery until it is rendered: its DocumentReference
#: (identifier, date, context, place in the Provenance) is made with the signature and
#: its attachment filled with the rendered bytes (``freeze.render_pending``) before the
#: outbox may send it (``adapters.frozen.pending_for``).
PENDING_PDF = b"%PDF-1.7\n% the clinician summary, rendered after the signature\n"


def _delivery(kb: Any, signed: signoff.Signed, patient_record: store_mod.PatientRecord,
              now: dt.datetime, ehr_base: str, *, ehr_practitioner: str | None = None,
              impression: impression_mod.Impression = impression_mod.NONE,
              assessed: Any = None,
              proms: Sequence[pipeline.Prom] = ()) -> dict[str, Any]:
    """The record the EHR receives: the transaction Bundle with the clinician summary
    as a DocumentReference (the part every EHR accepts, whatever its profile), the
    assessment the clinician signed (``assessed``), and the visit's outcome measures
    about the patient as the EHR knows them."""
    exam = replace(signed.exam, context=replace(
        signed.exam.context, subject=ehr_subject(patient_record, ehr_base),
        author=ehr_author(signed.exam.context.author, ehr_practitioner)))
    summary = Document("summary", documents.summary_heading(exam.form), PENDING_PDF)
    return pipeline.record(kb, exam, plugin_version=__version__, recorded=now,
                           documents=[summary], impression=impression, assessed=assessed,
                           proms=proms)


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


def ehr_author(author: Mapping[str, Any] | None,
               ehr_practitioner: str | None = None) -> dict[str, Any] | None:
    """The signer as the EHR can know them: our ``Practitioner/<user id>`` means nothing
    there (a strict EHR refuses a reference it cannot resolve), so the EHR gets the
    EHR's own ``Practitioner/<id>`` when the signer came from it by a launch
    (``ehr_practitioner``, relative to the EHR's base), else the Practitioner's
    identifier, when the user has one, and the name."""
    if author is None:
        return None
    result = {k: v for k, v in author.items() if k not in ("reference",)}
    if ehr_practitioner:
        result = {"reference": ehr_practitioner, **result}
    return result


def amend(store: store_mod.Store, form: Any, exam: store_mod.ExamRecord,
          patient_record: store_mod.PatientRecord, *, expected_version: int,
          reason: Any, now: dt.datetime, by: By) -> store_mod.ExamRecord:
    """Reopen a signed exam for changes; the reason (required) goes with the next
    signature."""
    reason = signoff.text(reason, "reason", "An amendment needs a reason.")
    checked = drafts.check(form, exam.answers)
    signed = (responses.one_step_of(store.revision(exam.id, exam.revisions).response)
              if exam.revisions else frozenset())
    return store.begin_amendment(exam.id, expected_version=expected_version, reason=reason,
                                 draft=draft_response(form, checked, exam.id, exam.encounter,
                                                      patient_record, now, signed),
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
