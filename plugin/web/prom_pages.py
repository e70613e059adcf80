"""The tablet's outcome questionnaires (PROMs) in a visit, and its patient mode.

The clinician adds a PROM to an exam (draft or amending) from the review page's
"Outcome questionnaires" area, fills it in on one page (autosaved with If-Match like
the exam) or hands the tablet to the patient: "Hand to patient" puts the server-side
session in patient mode, bound to that PROM, and the guard (``web.auth``) lets it reach
only this module's patient pages for that PROM until the clinician's password is
entered again. Views are glue: the use cases are ``record.proms``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import (Blueprint, Response, abort, jsonify, redirect,
                   render_template, request, session, url_for)

from ..adapters import prom_store, sessions, smart, store as store_mod, users
from ..adapters.prom_store import PromRecord
from ..core import prom_answers, scoring
from ..errors import (AnswerError, ConflictError, InputError, LockedError, NotFoundError,
                      PluginError)
from ..record import proms
from . import boundary
from .audit import read_of
from .auth import SESSION_KEY, current_user, requires
from .exam import requester
from .current import kb as _kb, now as _now, store as _store

bp = Blueprint("proms", __name__, template_folder="templates")

CONFLICT = ("This questionnaire was changed on another tablet or tab since this page was "
            "opened. Your latest change here was not saved. Reload to see the current "
            "answers, then make the change again.")
FINISHED = "This questionnaire is finished; its answers can no longer be changed."
#: What the patient reads on every screen (plain words; the clinician's are on the form).
PATIENT_HELP = ("Choose the answer that fits you best today. Your answer is saved when you "
                "choose it. You can go back to change an answer.")


def _load(exam_id: str, prom_id: str) -> tuple[PromRecord, Any, store_mod.PatientRecord]:
    """The PROM (of this exam), its instrument and its patient; 404 otherwise."""
    try:
        prom = prom_store.get(_store(), prom_id)
        if prom.exam_id != exam_id:
            raise NotFoundError("not this exam's")
        return prom, proms.instrument_of(_kb(), prom), _store().patient(prom.patient_id)
    except NotFoundError:
        abort(404, "No such questionnaire in this exam.")


def _read(prom: PromRecord) -> None:
    read_of(f"QuestionnaireResponse/{prom.id}", prom.patient_id)


def _session_id() -> str:
    return sessions.digest(session.get(SESSION_KEY) or "")


def _json_error(status: int, error: str, message: str, **extra: Any) -> Response:
    response = jsonify(error=error, message=message, **extra)
    response.status_code = status
    return response


def _if_match() -> int:
    header = request.headers.get("If-Match", "").strip().removeprefix("W/").strip('"')
    try:
        return int(header)
    except ValueError:
        abort(_json_error(428, "precondition-required",
                          "Send If-Match with the version this change is based on."))


def _form_version() -> int:
    try:
        return int(request.form.get("version", ""))
    except ValueError:
        abort(400, "The form is missing its version; reload the page.")


def score_lines(instrument: Any, prom: PromRecord) -> list[tuple[str, str]]:
    """(label, value in words) of each score, recomputed from the stored answers; a
    score the answers do not give yet reads "not scored yet"."""
    values = scoring.scores(instrument, prom.response)  # recomputed, never read back
    return [(text, _words(values[link_id]))
            for link_id, text in prom_answers.score_items(instrument)]


def _words(value: Any) -> str:
    if value is None:
        return "not scored yet"
    if isinstance(value, Mapping):  # a result picked from the score item's options
        return str(value.get("display") or value.get("code"))
    return str(value)


# --- the visit's area on the review page ------------------------------------------------

@bp.app_template_global("visit_proms")
def visit_proms(exam: store_mod.ExamRecord) -> list[dict[str, Any]]:
    """For the review page's "Outcome questionnaires" area: each PROM of the visit with
    its instrument's title, state and scores (each listed PROM's read audited)."""
    rows = []
    for prom in proms.for_exam(_store(), exam.id):
        instrument = _kb().instrument_for(prom.instrument)
        _read(prom)
        rows.append({"prom": prom, "title": instrument.title if instrument else prom.instrument,
                     "scores": score_lines(instrument, prom) if instrument else [],
                     "not_for_patients": proms.not_for_patients(instrument) if instrument
                     else None})
    return rows


@bp.app_template_global("prom_instruments")
def prom_instruments() -> list[Any]:
    """The instruments a clinician may add, by title."""
    return sorted(_kb().instruments.values(), key=lambda i: i.title)


# --- the clinician's side -----------------------------------------------------------------

@bp.post("/exams/<exam_id>/proms")
@requires("clinician")
def add(exam_id: str) -> Any:
    try:
        exam = _store().exam(exam_id)
        patient_record = _store().patient(exam.patient_id)
    except NotFoundError:
        abort(404, "No such exam.")
    try:
        prom = proms.add(_store(), _kb(), exam, patient_record, request.form.get("instrument"),
                         now=_now(), by=requester())
    except InputError as exc:
        return _back_to_review(exam_id, exc.message, 422)
    except LockedError:  # signed meanwhile: its record (amend it to add one)
        return redirect(url_for("exam.record", exam_id=exam_id), 303)
    return redirect(url_for("proms.form", exam_id=exam_id, prom_id=prom.id), 303)


def _back_to_review(exam_id: str, message: str, status: int) -> Any:
    from .exam import review_again

    return review_again(exam_id, message, status)


@bp.get("/exams/<exam_id>/proms/<prom_id>")
def form(exam_id: str, prom_id: str) -> Any:
    """The whole questionnaire on one page (the clinician's), or its scores once
    finished."""
    prom, instrument, patient_record = _load(exam_id, prom_id)
    return _form_page(prom, instrument, patient_record)


def _form_page(prom: PromRecord, instrument: Any, patient_record: store_mod.PatientRecord,
               *, errors: Mapping[str, list[str]] | None = None, message: str | None = None,
               status: int = 200) -> Any:
    _read(prom)
    exam = _store().exam(prom.exam_id)
    checked = prom_answers.check(instrument, prom.answers)
    return render_template(
        "exam/prom_form.html", prom=prom, instrument=instrument, patient=patient_record,
        exam=exam, questions=prom_answers.questions(instrument), raw=checked.raw,
        instructions=prom_answers.instructions(instrument),
        not_for_patients=proms.not_for_patients(instrument),
        errors=errors if errors is not None else checked.errors, message=message,
        scores=score_lines(instrument, prom), editable=exam.state != "signed",
        client_data=_client_data(prom)), status


def _client_data(prom: PromRecord) -> dict[str, Any]:
    return {"promId": prom.id, "version": prom.version,
            "saveUrl": url_for("proms.save", exam_id=prom.exam_id, prom_id=prom.id)}


@bp.put("/exams/<exam_id>/proms/<prom_id>/answers")
def save(exam_id: str, prom_id: str) -> Response:
    """Autosave: the answers sent replace those questions' answers (null clears one);
    the scores come back recomputed by the server, whatever the client sent."""
    prom, _, patient_record = _load(exam_id, prom_id)
    expected = _if_match()
    try:
        body = boundary.json_body("The autosave")
    except InputError as exc:
        return _json_error(exc.status, "bad-request", exc.message)
    sent = body.get("answers") if isinstance(body, Mapping) else None
    if not isinstance(sent, Mapping):
        return _json_error(400, "bad-request", 'Expected {"answers": {...}}.')
    try:
        saved, checked = _save(prom, patient_record, expected, sent)
    except ConflictError as exc:
        if prom.finished:
            return _json_error(409, "finished", FINISHED, version=exc.current)
        return _json_error(412, "conflict", CONFLICT, version=exc.current)
    except LockedError as exc:
        return _json_error(409, "locked", exc.message)
    except InputError as exc:
        return _json_error(422, "invalid", exc.message,
                           errors={k: [m] for k, m in exc.issues if k})
    instrument = proms.instrument_of(_kb(), saved)
    response = jsonify(version=saved.version, errors=checked.errors,
                       scores=[list(line) for line in score_lines(instrument, saved)])
    response.headers["ETag"] = f'"{saved.version}"'
    return response


def _save(prom: PromRecord, patient_record: store_mod.PatientRecord, expected: int,
          sent: Mapping[str, Any]) -> tuple[PromRecord, prom_answers.Checked]:
    merged = {**prom.answers, **sent}
    merged = {k: v for k, v in merged.items() if v is not None}
    return proms.save(_store(), _kb(), prom, patient_record, expected_version=expected,
                      answers=merged, now=_now(), by=requester())


@bp.post("/exams/<exam_id>/proms/<prom_id>/finish")
def finish(exam_id: str, prom_id: str) -> Any:
    """Finish the questionnaire: from the clinician's page back to it (with its score),
    from the patient's last screen to the thank-you page."""
    prom, instrument, patient_record = _load(exam_id, prom_id)
    expected = _form_version()
    if _in_patient_mode():
        if prom.version != expected:
            return _patient_page(prom, instrument, 1, status=409, message=CONFLICT)
        return _patient_finish(prom, instrument, patient_record)
    try:
        proms.finish(_store(), _kb(), prom, patient_record, expected_version=expected,
                     now=_now(), by=requester())
    except AnswerError as exc:
        return _form_page(prom, instrument, patient_record, errors=exc.errors, status=422,
                          message="Answer the questions marked before finishing.")
    except ConflictError:
        return _form_page(prom, instrument, patient_record, status=409,
                          message=FINISHED if prom.finished else CONFLICT)
    except LockedError as exc:
        return _form_page(prom, instrument, patient_record, message=exc.message, status=409)
    return redirect(url_for("proms.form", exam_id=exam_id, prom_id=prom_id), 303)


@bp.post("/exams/<exam_id>/proms/<prom_id>/remove")
@requires("clinician")
def remove(exam_id: str, prom_id: str) -> Any:
    prom, instrument, patient_record = _load(exam_id, prom_id)
    try:
        proms.remove(_store(), prom, expected_version=_form_version(), by=requester())
    except ConflictError:
        return _form_page(prom, instrument, patient_record, status=409,
                          message=FINISHED if prom.finished else CONFLICT)
    except LockedError as exc:
        return _form_page(prom, instrument, patient_record, message=exc.message, status=409)
    return redirect(url_for("exam.review", exam_id=exam_id) + "#proms", 303)


@bp.post("/exams/<exam_id>/proms/<prom_id>/hand")
@requires("clinician")
def hand(exam_id: str, prom_id: str) -> Any:
    """"Hand to patient": this session is in patient mode for this PROM from now on."""
    prom, instrument, patient_record = _load(exam_id, prom_id)
    try:
        proms.hand_to_patient(_store(), _kb(), _session_id(), prom)
    except InputError as exc:
        return _form_page(prom, instrument, patient_record, message=exc.message, status=409)
    return redirect(url_for("proms.patient_question", exam_id=exam_id, prom_id=prom_id,
                            number=1), 303)


# --- patient mode -------------------------------------------------------------------------

def _in_patient_mode() -> bool:
    from .auth import patient_mode_prom

    return patient_mode_prom() is not None


@bp.get("/exams/<exam_id>/proms/<prom_id>/patient/<int:number>")
def patient_question(exam_id: str, prom_id: str, number: int) -> Any:
    """One question per screen, large, with its progress."""
    prom, instrument, _ = _load(exam_id, prom_id)
    if not _in_patient_mode():
        return redirect(url_for("proms.form", exam_id=exam_id, prom_id=prom_id))
    if prom.finished:
        return redirect(url_for("proms.thanks", exam_id=exam_id, prom_id=prom_id))
    return _patient_page(prom, instrument, number)


@bp.post("/exams/<exam_id>/proms/<prom_id>/patient/<int:number>")
def patient_answer(exam_id: str, prom_id: str, number: int) -> Any:
    """The screen's form (Back / Next, without the page's script too): its answer
    saved on the version shown, then the next or previous screen."""
    prom, instrument, patient_record = _load(exam_id, prom_id)
    questions = prom_answers.questions(instrument)
    if not 1 <= number <= len(questions):
        abort(404, "No such question.")
    question = questions[number - 1]
    value = request.form.get(question.link_id) or None
    stored = prom.answers.get(question.link_id)
    try:
        if value == (None if stored is None else str(stored)) and not prom.finished:
            # already saved by the page's autosave: nothing to write again
            saved, checked = prom, prom_answers.check(instrument, prom.answers)
        else:
            saved, checked = _save(prom, patient_record, _form_version(),
                                   {question.link_id: value})
    except ConflictError:
        return _patient_page(prom, instrument, number, status=409,
                             message=FINISHED if prom.finished else CONFLICT)
    except (InputError, LockedError) as exc:
        return _patient_page(prom, instrument, number, status=422, message=exc.message)
    if question.link_id in checked.errors:
        return _patient_page(saved, instrument, number, status=422)
    if request.form.get("go") == "finish":
        return _patient_finish(saved, instrument, patient_record)
    step = -1 if request.form.get("go") == "back" else 1
    target = min(max(1, number + step), len(questions))
    return redirect(url_for("proms.patient_question", exam_id=exam_id, prom_id=prom_id,
                            number=target), 303)


def _patient_finish(prom: PromRecord, instrument: Any,
                    patient_record: store_mod.PatientRecord) -> Any:
    """The last screen's Finish: done (the thank-you page), or the first question still
    to answer."""
    try:
        proms.finish(_store(), _kb(), prom, patient_record, expected_version=prom.version,
                     now=_now(), by=requester())
    except AnswerError as exc:
        numbers = {q.link_id: n for n, q in
                   enumerate(prom_answers.questions(instrument), start=1)}
        first = min((numbers[k] for k in exc.errors if k in numbers), default=1)
        return _patient_page(prom, instrument, first, status=422,
                             message="Please answer this question before you finish.")
    except ConflictError:
        return _patient_page(prom, instrument, 1, status=409, message=CONFLICT)
    return redirect(url_for("proms.thanks", exam_id=prom.exam_id, prom_id=prom.id), 303)


def _patient_page(prom: PromRecord, instrument: Any, number: int, *, status: int = 200,
                  message: str | None = None) -> Any:
    questions = prom_answers.questions(instrument)
    if not 1 <= number <= len(questions):
        abort(404, "No such question.")
    _read(prom)
    checked = prom_answers.check(instrument, prom.answers)
    question = questions[number - 1]
    return render_template(
        "exam/prom_patient.html", prom=prom, instrument=instrument, question=question,
        number=number, total=len(questions), value=checked.raw.get(question.link_id),
        instructions=prom_answers.instructions(instrument),
        error=(checked.errors.get(question.link_id) or [None])[0], message=message,
        help=PATIENT_HELP, client_data=_client_data(prom)), status


@bp.get("/exams/<exam_id>/proms/<prom_id>/patient/done")
def thanks(exam_id: str, prom_id: str) -> Any:
    return render_template("exam/prom_thanks.html", exam_id=exam_id, prom_id=prom_id)


@bp.get("/proms/<prom_id>/return")
def return_page(prom_id: str) -> Any:
    """The clinician's password, to leave patient mode (no patient data on it; it works
    even when the PROM was removed meanwhile on another tablet)."""
    if not _in_patient_mode():
        return redirect(_after_return(prom_id))
    return _return_page(prom_id)


def _return_page(prom_id: str, *, error: str | None = None, status: int = 200) -> Any:
    user = current_user()
    return render_template("exam/prom_return.html", prom_id=prom_id, error=error,
                           has_password=bool(user and user.has_password),
                           clinician=user.display_name if user else ""), status


def _after_return(prom_id: str) -> str:
    """The clinician's page of the PROM (with its score), or the patients if it is gone."""
    try:
        prom = prom_store.get(_store(), prom_id)
    except NotFoundError:
        return url_for("exam.patients")
    return url_for("proms.form", exam_id=prom.exam_id, prom_id=prom.id)


@bp.post("/proms/<prom_id>/return")
def return_post(prom_id: str) -> Any:
    """Back to the clinician: the signed-in clinician's own password (a wrong one counts
    towards the account's lock-out, which ends the session). An account without a local
    password signs in again instead: this session ends (nothing of it reaches the
    patient) and a new one, not in patient mode, begins at its sign-in service."""
    user = current_user()
    assert user is not None  # the guard let no anonymous request through
    if not _in_patient_mode():
        return redirect(_after_return(prom_id), 303)
    if not user.has_password:  # confirmed at their sign-in service, like a signature
        from . import sso

        try:
            elsewhere = sso.patient_return(user, prom_id)
        except (PluginError, smart.SmartError, ValueError) as error:
            words = error.message if isinstance(error, PluginError) else str(error)
            return _return_page(prom_id, status=502, error=(
                f"Your sign-in service could not be reached ({words}). Try again."))
        if elsewhere is not None:
            return elsewhere
    if not user.has_password or request.form.get("action") == "sign-in-again":
        sessions.end(_store(), session.get(SESSION_KEY))
        session.pop(SESSION_KEY, None)
        return redirect(url_for("signin.login", next=_after_return(prom_id)), 303)
    if not users.verify_password(_store(), user, request.form.get("password", ""),
                                 now=_now(), address=request.remote_addr):
        return _return_page(prom_id, status=422, error=(
            "That password is not right. Please hand the tablet back to your clinician."))
    return returned(prom_id)


def returned(prom_id: str) -> Any:
    """The clinician confirmed who they are (password here, or at their sign-in service):
    out of patient mode, to the PROM's page with its score."""
    proms.back_to_clinician(_store(), _session_id())
    return redirect(_after_return(prom_id), 303)


def patient_start(prom_id: str) -> str | None:
    """Where a refused request in patient mode points back to: the PROM's first screen
    (None when the PROM is gone: then only the return page is left)."""
    try:
        prom = prom_store.get(_store(), prom_id)
    except NotFoundError:
        return None
    return url_for("proms.patient_question", exam_id=prom.exam_id, prom_id=prom.id, number=1)


def init_app(app: Any) -> None:
    app.register_blueprint(bp)
