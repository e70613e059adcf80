"""The tablet exam app: patients, exam pages, autosaved drafts, review, sign-off, amendment.

Views are glue: they read the request, call the record's use cases
(``plugin.record.exams``) and the pure core for display, and render. The working answers are stored exactly as
entered on every autosave, so a wrong value is reported but never dropped; writes
carry the version they were based on (ETag / If-Match, or a hidden field on forms),
so a second tablet can never silently overwrite the first.
"""
from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from flask import (Blueprint, Response, abort, current_app, jsonify, redirect,
                   render_template, request, url_for)

from ..adapters import identities, outbox, signing_key, store as store_mod, users
from ..core import datetimes, drafts, layout, patient as patient_mod, responses
from ..record import exams, freeze, pipeline, progress, signoff, visits
from ..record import proms as proms_mod, visit_proms as visit_proms_mod
from ..record.trail import By
from ..decision import impression as impression_mod, sources
from ..errors import (AnswerError, ConflictError, DuplicatePatientError, InputError,
                      LockedError, NotFoundError)
from . import boundary, impression_form
from .audit import read_of, refused_read, search_of
from .auth import current_user, requires
from .patient_form import PatientInput
from .current import kb as _kb, now as _now, store as _store

bp = Blueprint("exam", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/exam")

CONFLICT = ("This exam was changed on another tablet or tab since this page was opened. "
            "Your latest change here was not saved. Reload to see the current version, "
            "then make the change again.")
LOCKED = "This exam is signed and locked. Start an amendment (with a reason) to change it."


@bp.app_template_filter("patient_name")
def _patient_name(resource: Mapping[str, Any]) -> str:
    """How pages name a patient: "Family, Given" (the same as the PDF summary)."""
    return patient_mod.display_name(resource, family_first=True)


@bp.app_template_filter("local_time")
def _local_time(moment: dt.datetime) -> str:
    """A stored (UTC) time as the clinic reads it: in ``TIME_ZONE``, with the zone's
    abbreviation (the same format as the PDF summary's signing time)."""
    return datetimes.local(moment, current_app.config["TIME_ZONE"])


def requester() -> By:
    """Who asks for this write, as its AuditEvent names them: the signed-in user and the
    request's network address."""
    from .audit import current_actor

    return By(current_actor(), request.remote_addr)


def _form_for(exam: store_mod.ExamRecord) -> Any:
    form = _kb().form_for(exam.questionnaire)
    if form is None:
        abort(410, "This exam's Questionnaire version is no longer loaded.")
    return form


def _patient(patient_id: str) -> store_mod.PatientRecord:
    try:
        return _store().patient(patient_id)
    except NotFoundError:
        abort(404, "No such patient.")


def _read_exam(record: store_mod.ExamRecord, *, revision: int | None = None) -> None:
    """Audit the signed-in user's read of an exam (served as the QuestionnaireResponse
    with the exam's id; a revision as its version) before the page or PDF is rendered."""
    resource = f"QuestionnaireResponse/{record.id}"
    if revision is None:
        read_of(resource, record.patient_id)
    else:
        read_of(f"{resource}/_history/{revision}", record.patient_id, interaction="vread")


def _load(exam_id: str) -> tuple[store_mod.ExamRecord, store_mod.PatientRecord, Any]:
    try:
        exam = _store().exam(exam_id)
        return exam, _store().patient(exam.patient_id), _form_for(exam)
    except NotFoundError:
        abort(404, "No such exam.")


# --- patients ---------------------------------------------------------------------------

@bp.get("/")
def home() -> Response:
    return redirect(url_for("exam.patients"))


@bp.get("/patients")
def patients() -> str:
    search = (request.args.get("q") or "").strip()[:100]
    found = _store().patients(search or None)
    search_of("Patient", (p.id for p in found))
    return render_template("exam/patients.html", patients=found,
                           search=search, values={}, errors={})


@bp.post("/patients")
def add_patient() -> Any:
    values = {k: request.form.get(k, "") for k in PatientInput.FIELDS}
    result = PatientInput(today=_now().date()).validate_form(values)
    if result.errors:  # the list is shown again: a read of every patient listed
        found = _store().patients()
        search_of("Patient", (p.id for p in found))
        return render_template("exam/patients.html", patients=found,
                               search="", values=values, errors=result.errors), 422
    try:
        record = exams.add_patient(_store(), result.resource(
            current_app.config["PATIENT_IDENTIFIER_SYSTEM"]), by=requester(),
            confirmed=request.form.get("confirm") == "different-person")
    except DuplicatePatientError as exc:  # shown with a link to the patient on file
        found = _store().patients()
        on_file = [*exc.same_identifier, *exc.same_person]
        search_of("Patient", [*(p.id for p in found), *(p.id for p in on_file)])
        errors = {"identifier": [exc.message]} if exc.same_identifier else {}
        return render_template("exam/patients.html", patients=found, search="",
                               values=values, errors=errors, duplicate=exc), 409
    return redirect(url_for("exam.patient", patient_id=record.id), 303)


@bp.get("/patients/<patient_id>")
def patient(patient_id: str) -> str:
    record = _patient(patient_id)
    exams_ = _store().exams_for(patient_id)
    read_of(f"Patient/{record.id}", record.id)
    visits = {v.exam_id: v for v in progress.visits(
        _store(), _kb(), record.id, time_zone=current_app.config["TIME_ZONE"])}
    return render_template("exam/patient.html", patient=record, exams=exams_, visits=visits)


@bp.post("/patients/<patient_id>/exams")
def start_exam(patient_id: str) -> Response:
    exam = begin_exam(_patient(patient_id))
    return redirect(first_page(exam), 303)


def first_page(exam: store_mod.ExamRecord) -> str:
    """Where an exam opens: its first page (the record, once signed)."""
    if exam.state == "signed":
        return url_for("exam.record", exam_id=exam.id)
    return url_for("exam.page", exam_id=exam.id,
                   section=layout.pages(_form_for(exam))[0].item.link_id)


def begin_exam(patient_record: store_mod.PatientRecord, *,
               encounter: Mapping[str, Any] | None = None,
               launch_id: str | None = None) -> store_mod.ExamRecord:
    """A new exam (or the one already begun in this encounter): ``exams.begin``."""
    return exams.begin(_store(), _kb(), patient_record, now=_now(), encounter=encounter,
                       launch_id=launch_id, by=requester())


# --- the exam pages and their autosave ---------------------------------------------------

@bp.get("/exams/<exam_id>")
def exam(exam_id: str) -> Response:
    record, _, _ = _load(exam_id)
    return redirect(first_page(record))


@bp.get("/exams/<exam_id>/pages/<section>")
def page(exam_id: str, section: str) -> Any:
    record, patient_record, form = _load(exam_id)
    if record.state == "signed":
        return redirect(url_for("exam.record", exam_id=exam_id))
    current = layout.page(form, section)
    if current is None:
        abort(404, "No such page in this exam.")
    checked = drafts.check(form, record.answers)  # a value of the wrong shape: a problem
    pages = layout.pages(form)
    _read_exam(record)
    alert = pipeline.red_flag_alert(_kb(), checked.valid)  # on every page, until answered no
    carried = exams.carried_answers(record)
    return render_template(
        "exam/page.html", exam=record, patient=patient_record, form=form, page=current,
        pages=pages, progress=drafts.progress(form, checked.valid), raw=checked.raw,
        errors=checked.errors, layout=layout, red_flag_alert=alert, carried=carried,
        previous=pages[current.number - 2] if current.number > 1 else None,
        next=pages[current.number] if current.number < len(pages) else None,
        client_data={"examId": record.id, "version": record.version, "section": section,
                     "linkIds": list(current.link_ids), "answers": checked.raw,
                     "errors": checked.errors, "redFlags": alert,
                     "screen": [list(pair) for pair in current.screen],
                     "oneStep": current.item.link_id in exams.one_step_sections(record),
                     "carried": sorted(k for k in carried if k in current.link_ids),
                     "redFlagTriggers": pipeline.red_flag_triggers(_kb(), form, current.link_ids),
                     "saveUrl": url_for("exam.save_draft", exam_id=exam_id)})


@bp.put("/exams/<exam_id>/draft")
def save_draft(exam_id: str) -> Response:
    """Autosave one page: its answers replace that page's part of the working answers."""
    record, patient_record, form = _load(exam_id)
    expected = _if_match()
    try:
        body = boundary.json_body("The autosave")
    except InputError as exc:
        return _json_error(exc.status, "bad-request", exc.message,
                           path=exc.issues[0][0])
    section = body.get("section") if isinstance(body, Mapping) else None
    current = layout.page(form, section) if isinstance(section, str) else None
    if current is None or not isinstance(body.get("answers"), Mapping):
        return _json_error(400, "bad-request",
                           'Expected {"section": a page of this exam, "answers": {...}}.')
    page_answers = {k: v for k, v in body["answers"].items() if k in current.link_ids}
    wrong = drafts.shape_errors(form, page_answers)
    if wrong:  # stored, it would break the page that must fix it: nothing is saved
        return _json_error(422, "invalid", "Not saved: an answer has the wrong shape for "
                           "its question.", errors=wrong)
    raw = drafts.merge(record.answers, current.link_ids, page_answers)
    # the page says whether its screen stands as recorded with its one tap
    one_step = exams.one_step_sections(record) - {current.item.link_id}
    if body.get("oneStep") is True:
        one_step |= {current.item.link_id}
    # a carried answer stays marked while the page still shows it as carried
    still = body.get("carried") if isinstance(body.get("carried"), list) else []
    carried = {k: v for k, v in exams.carried_answers(record).items()
               if k not in current.link_ids or k in still}
    try:
        saved, checked = exams.save_draft(_store(), form, record, patient_record,
                                          expected_version=expected, answers=raw, now=_now(),
                                          by=requester(), one_step=one_step,
                                          carried=carried)
    except ConflictError as exc:
        return _json_error(412, "conflict", CONFLICT, version=exc.current)
    except LockedError:
        return _json_error(409, "locked", LOCKED)
    response = jsonify(version=saved.version, errors=checked.errors,
                       redFlags=pipeline.red_flag_alert(_kb(), checked.valid),
                       progress={k: list(v) for k, v in drafts.progress(form, checked.valid).items()})
    response.headers["ETag"] = f'"{saved.version}"'
    return response


def _if_match() -> int:
    header = request.headers.get("If-Match", "").strip()
    if header.startswith("W/"):
        header = header[2:]
    try:
        return int(header.strip('"'))
    except ValueError:
        abort(_json_error(428, "precondition-required",
                          "Send If-Match with the version this change is based on."))


def _json_error(status: int, error: str, message: str, **extra: Any) -> Response:
    response = jsonify(error=error, message=message, **extra)
    response.status_code = status
    return response


# --- review, sign-off, record, amendment -------------------------------------------------

def _signable(raw: Mapping[str, Any], checked: drafts.Checked) -> dict[str, Any]:
    """The raw answers that pass validation: what a signature would record."""
    return {k: v for k, v in raw.items() if k in checked.valid}


def _assessment(valid: Any, proms: Sequence[pipeline.Prom] = (),
                prior: Sequence[Any] = (), on: dt.date | None = None) -> dict[str, Any]:
    """The assessment of the valid answers with the visit's outcome measures and, for a
    follow-up, over its episode (``record.visits``) as of ``on`` (default today)."""
    return pipeline.assess_answers(_kb(), valid, proms, prior=prior,
                                   on=on or _today()).as_json()


def _time_zone() -> str:
    return current_app.config["TIME_ZONE"]


def _today() -> dt.date:
    """Today at the clinic (``TIME_ZONE``): the day a visit under review is on."""
    return datetimes.local_day(_now(), _time_zone())


def visit_proms(record_: store_mod.ExamRecord) -> list[Mapping[str, Any]]:
    """The visit's finished PROMs as scored QuestionnaireResponse JSON (contract K1,
    ``record.proms.completed``); InputError names an instrument still unfinished."""
    return proms_mod.completed(_store(), _kb(), record_.id)


def _proms_shown(record_: store_mod.ExamRecord) -> dict[str, Any]:
    """The review's outcome measures: scored, with their meaning (change since the
    patient's earlier scores, read from the Observations of their other signed exams:
    audited as that search), or why one cannot be signed yet."""
    try:
        scored, lines = visit_proms_mod.shown(_store(), _kb(), record_, visit_proms(record_),
                                              time_zone=_time_zone())
    except InputError as exc:
        return {"scored": [], "proms": [], "prom_results": [], "prom_problem": exc.message}
    if scored:  # the patient's earlier scores were searched (their other signed exams)
        search_of("Observation", [record_.patient_id])
    return {"scored": scored, "proms": [s for _, s in scored], "prom_results": lines,
            "prom_problem": None}


def _decision_support(valid: Any, proms: Sequence[pipeline.Prom] = (),
                      prior: Sequence[Any] = (), on: dt.date | None = None) -> dict[str, Any]:
    """What the assessment include needs: the assessment (with the visit's outcome
    measures, over a follow-up's episode), its numbered sources and the reasons to
    print (review and record pages alike)."""
    assessment = _assessment(valid, proms, prior, on)
    return {"assessment": assessment,
            "sources": sources.numbered(assessment, _kb().decision.citations),
            "shown": sources.shown_evidence}


def _review(exam_id: str, *, message: str | None = None, status: int = 200,
            password_error: str | None = None,
            impression: tuple[Mapping[str, Any] | None, Mapping[str, str]] | None = None
            ) -> Any:
    """The review page; ``impression``: the panel's values and field errors to show
    instead of the stored ones (a refused save keeps what was typed)."""
    record, patient_record, form = _load(exam_id)
    if record.state == "signed":
        return redirect(url_for("exam.record", exam_id=exam_id))
    _read_exam(record)  # also when re-shown after a refused signing: it is seen again
    checked = drafts.check(form, record.answers)
    prior = visits.prior_visits(_store(), record, time_zone=_time_zone())
    for earlier in prior:  # the visits it is compared with are read too: audited
        read_of(f"QuestionnaireResponse/{earlier.exam_id}", record.patient_id)
    proms = _proms_shown(record)
    support = _decision_support(checked.valid, proms.pop("scored"), prior)
    values, field_errors = impression if impression else (record.impression, {})
    ranked = support["assessment"]["differential"]
    episode = visits.episode_view(
        _kb(), prior, record.answers, exam=record, on=_today(),
        top_condition=ranked[0]["condition"] if ranked else None,
        impression=tuple(filter(None, [exams.impression_of(_kb(), record.impression).condition])),
        proms=proms["proms"], earlier_proms=visits.previous_proms(_store(), prior))
    return render_template(
        "exam/review.html", exam=record, patient=patient_record, form=form,
        pages=layout.pages(form), progress=drafts.progress(form, checked.valid),
        summary=layout.summary(form, _signable(record.answers, checked),
                               exams.one_step_sections(record)),
        one_step_pages=_one_step_pages(form, exams.one_step_sections(record)),
        errors=checked.errors, **support, message=message,
        password_error=password_error,
        plan=impression_form.panel(_kb().decision, values, support["assessment"],
                                   field_errors),
        layout=layout, episode=episode, **proms,
        section_of=lambda link_id: drafts.section_of(form, link_id).link_id), status


def _one_step_pages(form: Any, sections: frozenset[str]) -> list[layout.Page]:
    """The pages (in exam order) whose screen was recorded in one step."""
    return [p for p in layout.pages(form) if p.item.link_id in sections]


@bp.get("/exams/<exam_id>/review")
def review(exam_id: str) -> Any:
    return _review(exam_id)


@bp.post("/exams/<exam_id>/sign")
@requires("clinician")
def sign(exam_id: str) -> Any:
    """Sign as the signed-in clinician, who enters their password again (21 CFR 11.200:
    each signing re-enters a component only its owner has); never a typed name. A user
    who signs in elsewhere (single sign-on, EHR launch) re-authenticates there instead
    (``web/sso``), which ends in ``complete_signature`` too."""
    user = current_user()
    assert user is not None  # the guard let no anonymous request through
    reauthenticated = _now()
    started = time.perf_counter()
    if not users.verify_password(_store(), user, request.form.get("password", ""),
                                 now=reauthenticated, address=request.remote_addr):
        return _review(exam_id, password_error="The password is not right; the exam was "
                       "not signed. Enter your own password to sign.", status=422)
    checked_ms = (time.perf_counter() - started) * 1000
    response = current_app.make_response(
        complete_signature(exam_id, user, reauthenticated, _form_version()))
    if current_app.config["SERVER_TIMING"]:  # only a signature's, never a failed check's
        response.headers["Server-Timing"] = f'password;dur={checked_ms:.1f}'
    return response


def complete_signature(exam_id: str, user: users.User, reauthenticated: dt.datetime,
                       expected: int) -> Any:
    """Sign the exam's stored working answers (version ``expected``) as ``user``, who
    re-authenticated at ``reauthenticated``; the record page, or the review with why not."""
    record, patient_record, _ = _load(exam_id)
    ehr_base = current_app.config.get("EHR_FHIR_BASE_URL") or None
    now = _now()
    try:
        # queued with the signature (one transaction) when delivery to the EHR is on
        exams.sign(_store(), _kb(), record, patient_record, expected_version=expected,
                   signer=signoff.Signer(
                       user.display_name, user.practitioner_reference, user.identifier,
                       signoff.Attestation(user.username, reauthenticated,
                                           current_app.extensions[signing_key.EXTENSION_KEY])),
                   now=now, ehr_base=ehr_base, by=requester(),
                   ehr_practitioner=identities.practitioner_at(_store(), user.id, ehr_base)
                   if ehr_base else None, time_zone=current_app.config["TIME_ZONE"],
                   clinic_contact=current_app.config["CLINIC_CONTACT"])
    except ConflictError:
        return _review(exam_id, message=CONFLICT, status=409)
    except LockedError:
        return redirect(url_for("exam.record", exam_id=exam_id), 303)
    except InputError as exc:
        if any((e or "").startswith("impression.") for e, _ in exc.issues):
            return _review(exam_id, message="Complete your impression and plan before "
                           "signing: " + exc.message, status=422, impression=(
                               record.impression, impression_form.field_errors(exc.issues)))
        return _review(exam_id, message=exc.message, status=422)
    except AnswerError:
        return _review(exam_id, message="Correct the problems listed before signing.",
                       status=422)
    return redirect(url_for("exam.record", exam_id=exam_id), 303)


def review_again(exam_id: str, message: str, status: int) -> Any:
    """The review page with why the exam was not signed (its answers untouched)."""
    return _review(exam_id, message=message, status=status)


@bp.post("/exams/<exam_id>/impression")
@requires("clinician")
def save_impression(exam_id: str) -> Any:
    """Save the clinician's impression and plan from the review page: a form post
    (back to the review) or the page's autosave (``Accept: application/json``, the
    version in If-Match), refused on a stale version like the answers."""
    record, _, form = _load(exam_id)
    wants_json = request.accept_mimetypes.best == "application/json"
    expected = _if_match() if wants_json else _form_version()
    assessment = _assessment(drafts.check(form, record.answers).valid)
    suggested = {r["service"]: r["priority"] for r in assessment["referrals"]}
    values = impression_form.from_form(request.form, suggested)
    try:
        saved = exams.save_impression(_store(), _kb(), record, expected_version=expected,
                                      impression=values, by=requester())
    except ConflictError as exc:
        if wants_json:
            return _json_error(412, "conflict", CONFLICT, version=exc.current)
        return _review(exam_id, message=CONFLICT, status=409, impression=(values, {}))
    except LockedError:
        if wants_json:
            return _json_error(409, "locked", LOCKED)
        return redirect(url_for("exam.record", exam_id=exam_id), 303)
    except InputError as exc:
        errors = impression_form.field_errors(exc.issues)
        added = request.form.get("add.service") or ""
        errors = {("add" + k[len(f"referral.{added}"):] if added and
                   k.startswith(f"referral.{added}") else k): v for k, v in errors.items()}
        if wants_json:
            return _json_error(422, "invalid", "Not saved: " + exc.message, errors=errors)
        return _review(exam_id, message="Your impression and plan was not saved: "
                       + exc.message, status=422, impression=(values, errors))
    if wants_json:
        response = jsonify(version=saved.version)
        response.headers["ETag"] = f'"{saved.version}"'
        return response
    return redirect(url_for("exam.review", exam_id=exam_id) + "#impression", 303)


def _form_version() -> int:
    try:
        return int(request.form.get("version", ""))
    except ValueError:
        abort(400, "The form is missing its version; reload the page.")


@bp.get("/exams/<exam_id>/record")
def record(exam_id: str) -> Any:
    """The signed record, read-only, with the way to amend it."""
    record_, patient_record, form = _load(exam_id)
    if record_.state != "signed":
        return redirect(url_for("exam.review", exam_id=exam_id))
    latest = _store().revision(exam_id, record_.revisions)
    return _revision_page(record_, patient_record, form, latest, current=True)


@bp.get("/exams/<exam_id>/revisions/<int:number>")
def revision(exam_id: str, number: int) -> Any:
    record_, patient_record, form = _load(exam_id)
    try:
        shown = _store().revision(exam_id, number)
    except NotFoundError:
        refused_read(f"QuestionnaireResponse/{record_.id}/_history/{number}",
                     record_.patient_id, "No such revision.", interaction="vread")
        abort(404, "No such revision.")
    return _revision_page(record_, patient_record, form, shown,
                          current=record_.state == "signed" and number == record_.revisions,
                          version=number)


def _revision_page(record_: store_mod.ExamRecord, patient_record: store_mod.PatientRecord,
                   form: Any, shown: store_mod.Revision, *, current: bool,
                   message: str | None = None, status: int = 200,
                   version: int | None = None) -> Any:
    """The record page; its read audited first (``version``: a revision asked for by
    number, audited as that version's read; else the exam's). The decision support is
    the one frozen at the signature; with ``?reassess=1`` and newer knowledge, a new,
    unsigned suggestion with the current knowledge is shown beside it."""
    _read_exam(record_, revision=version)
    checked = drafts.check(form, shown.answers)
    frozen = freeze.read(_store(), record_.id, shown.number)
    proms: dict[str, Any] = {"proms": [], "prom_results": [], "prom_problem": None,
                             "episode": None}
    if frozen is None:  # signed before freezing existed: made as it was then
        support, newer, ready, reassessed = _decision_support(checked.valid), None, True, None
    else:
        inputs, ready = frozen
        support = {"assessment": inputs.assessment, "sources": inputs.numbered(),
                   "shown": sources.shown_evidence}
        proms.update(proms=list(inputs.prom_responses), prom_results=inputs.proms())
        running = _kb().decision.version
        newer = running if running != inputs.knowledge_version else None
        reassessed = (_decision_support(checked.valid,
                                        visit_proms_mod.checked(_kb(), inputs.prom_responses),
                                        visits.prior_visits(_store(), record_,
                                                            time_zone=_time_zone()),
                                        on=datetimes.local_day(shown.signed_at, _time_zone()))
                      if newer and request.args.get("reassess") == "1" else None)
        proms["episode"] = inputs.episode
    return render_template(
        "exam/record.html", exam=record_, patient=patient_record, form=form,
        revision=shown, current=current,
        summary=layout.summary(form, shown.answers, responses.one_step_of(shown.response)),
        decided=impression_mod.view(_kb().decision, impression_mod.read(shown.impression),
                                    support["assessment"],
                                    (shown.impression or {}).get("outcomes")),
        one_step_pages=_one_step_pages(form, responses.one_step_of(shown.response)),
        **support, newer_knowledge=newer, reassessed=reassessed, documents_ready=ready,
        revisions=_store().revisions(record_.id), message=message, layout=layout, **proms,
        delivery=outbox.status_for(_store(), record_.id) if current else None), status


# --- delivery to the EHR: see what reached it, send again, confirm the EHR patient ------

#: What an EHR Patient id may be (FHIR id), as typed or chosen on the record page.
_EHR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _delivery_action(exam_id: str, done: Any, message: str) -> Any:
    """After a delivery action: back to the record page, or the page with ``message``
    (409) when there was nothing to act on."""
    record_, patient_record, form = _load(exam_id)
    if done is not None or record_.state != "signed":
        return redirect(url_for("exam.record", exam_id=exam_id), 303)
    latest = _store().revision(exam_id, record_.revisions)
    return _revision_page(record_, patient_record, form, latest, current=True,
                          message=message, status=409)


@bp.post("/exams/<exam_id>/delivery/again")
@requires("clinician")
def deliver_again(exam_id: str) -> Any:
    """"Send again": a delivery that could not be sent is queued again; only what is
    not in the EHR yet goes (``outbox.requeue``)."""
    _load(exam_id)
    return _delivery_action(exam_id, exams.send_again(_store(), exam_id, by=requester()),
                            "There is no failed delivery to send again.")


@bp.post("/exams/<exam_id>/delivery/patient")
@requires("clinician")
def delivery_patient(exam_id: str) -> Any:
    """A person names the EHR's patient for a held delivery: one of the EHR's
    candidates, or an EHR Patient id typed in. Never chosen by the plugin on a name."""
    _load(exam_id)
    chosen = (request.form.get("ehr_patient") or request.form.get("ehr_patient_id")
              or "").strip().removeprefix("Patient/")
    if not _EHR_ID.fullmatch(chosen):
        return _delivery_action(exam_id, None, "Choose the EHR's patient, or enter its EHR "
                                               "Patient id (letters, digits, - and .).")
    return _delivery_action(exam_id, exams.choose_ehr_patient(_store(), exam_id, chosen,
                                                                    by=requester()),
                            "No delivery is waiting for its EHR patient.")


@bp.post("/exams/<exam_id>/amend")
@requires("clinician")
def amend(exam_id: str) -> Any:
    record_, patient_record, form = _load(exam_id)
    expected = _form_version()
    try:
        exams.amend(_store(), form, record_, patient_record, expected_version=expected,
                    reason=request.form.get("reason"), now=_now(), by=requester())
    except (InputError, ConflictError) as exc:
        if record_.state != "signed":
            return redirect(url_for("exam.exam", exam_id=exam_id), 303)
        latest = _store().revision(exam_id, record_.revisions)
        message = CONFLICT if isinstance(exc, ConflictError) else exc.message
        return _revision_page(record_, patient_record, form, latest, current=True,
                              message=message, status=409 if isinstance(exc, ConflictError)
                              else 422)
    return redirect(url_for("exam.exam", exam_id=exam_id), 303)


@bp.post("/exams/<exam_id>/amend/cancel")
@requires("clinician")
def cancel_amendment(exam_id: str) -> Any:
    record_, _, _ = _load(exam_id)
    try:
        exams.cancel_amendment(_store(), record_, expected_version=_form_version(),
                               by=requester())
    except ConflictError:
        return _review(exam_id, message=CONFLICT, status=409)
    return redirect(url_for("exam.record", exam_id=exam_id), 303)


# the documents' routes (PDFs) live in their own module, on this blueprint
from . import exam_documents  # noqa: E402,F401  (imported last: it uses the helpers above)
from . import exam_follow_ups  # noqa: E402,F401  (the follow-up visit's route, likewise)
from . import progress as progress_page  # noqa: E402,F401  (the same: the progress page)
