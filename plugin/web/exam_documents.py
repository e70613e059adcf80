"""The tablet's documents: a signed revision's PDFs as stored at its signature (strong
ETag, 304, "preparing documents" while they are rendered), a draft's printed live.

Routes of the ``exam`` blueprint (endpoints ``exam.summary_pdf`` and so on), kept apart
from the pages in ``exam``.
"""
from __future__ import annotations

from typing import Any

from flask import Response, abort, current_app, request

from ..adapters import frozen as frozen_store, store as store_mod
from ..adapters.documents import render as documents
from ..core import drafts, responses
from ..core.responses import Exam
from ..decision import impression as impression_mod
from ..errors import NotFoundError
from ..record import exams
from .audit import refused_read
from .current import kb as _kb, now as _now, store as _store
from .exam import _assessment, _load, _proms_shown, _read_exam, bp


#: What a PDF link answers while a signed revision's documents are being rendered.
PREPARING = ("Preparing documents: the signed record's documents are being made. "
             "Try again in a few seconds.")
#: The file names the PDFs are served under, by kind.
FILE_NAMES = {"summary": "clinician-summary.pdf", "handout": "patient-handout.pdf",
              "handout-large": "patient-handout-large-print.pdf"}


def _document_exam(exam_id: str) -> tuple[Exam, store_mod.PatientRecord, None,
                                          impression_mod.Impression]:
    """The draft a document prints (printed as a draft, live), with the clinician's
    impression and plan so far. The document is about to be served: its read is audited
    now."""
    record_, patient_record, form = _load(exam_id)
    _read_exam(record_)
    checked = drafts.check(form, record_.answers)
    return (Exam(form, checked.valid, exams.draft_context(record_.id, record_.encounter,
                                                          patient_record, record_.updated)),
            patient_record, None, impression_mod.read(record_.impression))


def _pdf_response(document: bytes, name: str) -> Response:
    response = Response(document, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"  # patient data
    return response


def _signed_document(exam_id: str, kind: str, number: int | None) -> Response | None:
    """A signed revision's stored document (the latest revision's when ``number`` is
    None), its read audited: the frozen bytes with a strong ETag (their SHA-256),
    304 on a matching If-None-Match, 503 "preparing documents" while they are rendered.
    None for an exam never signed (its draft prints live), or a revision signed before
    freezing existed (printed as it was then, live)."""
    try:
        record_ = _store().exam(exam_id)
    except NotFoundError:
        abort(404, "No such exam.")
    revision = record_.revisions if number is None else number
    if number is not None and not 0 < number <= record_.revisions:
        refused_read(f"QuestionnaireResponse/{record_.id}/_history/{number}",
                     record_.patient_id, "No such revision.", interaction="vread")
        abort(404, "No such revision.")
    if not revision:
        return None
    stored = frozen_store.document(_store(), record_.id, revision, kind)
    if stored is None:
        if frozen_store.rendered(_store(), record_.id, revision) is None:
            return None
        _read_exam(record_, revision=number)
        response = Response(PREPARING, status=503, mimetype="text/plain")
        response.headers["Retry-After"] = "2"
        response.headers["Cache-Control"] = "no-store"
        return response
    _read_exam(record_, revision=number)
    response = Response(stored.content, mimetype=stored.media_type)
    response.set_etag(stored.sha256)  # strong: the bytes never change
    response.headers["Content-Disposition"] = f'inline; filename="{FILE_NAMES[kind]}"'
    # patient data: kept by this browser only, and asked again (If-None-Match) each time
    response.headers["Cache-Control"] = "private, no-cache"
    return response.make_conditional(request)


def _legacy_revision(exam_id: str, number: int | None) -> tuple[
        Exam, store_mod.PatientRecord, store_mod.Revision, impression_mod.Impression]:
    """A signed revision without frozen inputs (signed before they existed): its exam,
    patient, the revision itself and its impression, to print live as before."""
    record_, patient_record, form = _load(exam_id)
    _read_exam(record_, revision=number)
    latest = _store().revision(exam_id, number or record_.revisions)
    return (responses.read(form, latest.response), patient_record, latest,
            impression_mod.read(latest.impression))


def _live(exam_id: str, number: int | None) -> tuple[Exam, store_mod.PatientRecord,
                                                      Any, impression_mod.Impression]:
    record_ = _store().exam(exam_id)
    return (_legacy_revision(exam_id, number) if record_.revisions
            else _document_exam(exam_id))


def _summary(exam_id: str, number: int | None) -> Response:
    served = _signed_document(exam_id, "summary", number)
    if served is not None:
        return served
    exam_, patient_record, signed, impression = _live(exam_id, number)
    # a draft's outcome measures, as its review shows them (a signed revision's are frozen)
    proms = _proms_shown(_store().exam(exam_id)) if signed is None else \
        {"scored": [], "prom_results": []}
    summary = documents.summary_document(
        _kb(), exam_, patient_record.resource, now=_now(),
        assessment=_assessment(exam_.answers, proms["scored"]),
        proms=proms["prom_results"],
        clinician=signed.signed_by if signed else None,
        revision=signed.number if signed else None, reason=signed.reason if signed else None,
        signed_at=signed.signed_at if signed else None,
        time_zone=current_app.config["TIME_ZONE"], impression=impression)
    return _pdf_response(summary.pdf, FILE_NAMES["summary"])


def _handout(exam_id: str, number: int | None) -> Response:
    large = request.args.get("large") in ("1", "true", "yes")
    kind = "handout-large" if large else "handout"
    served = _signed_document(exam_id, kind, number)
    if served is not None:
        return served
    exam_, patient_record, _, impression = _live(exam_id, number)
    header = documents.handout_header(
        exam_, patient_record.resource, now=_now(),
        time_zone=current_app.config["TIME_ZONE"],
        clinic_contact=current_app.config["CLINIC_CONTACT"])
    return _pdf_response(documents.handout_pdf(_kb(), _assessment(exam_.answers),
                                               large_print=large, header=header,
                                               impression=impression), FILE_NAMES[kind])


@bp.get("/exams/<exam_id>/summary.pdf")
def summary_pdf(exam_id: str) -> Response:
    """The clinician summary of the signed record as stored at its signature (or of
    the draft, live, marked as such)."""
    return _summary(exam_id, None)


@bp.get("/exams/<exam_id>/handout.pdf")
def handout_pdf(exam_id: str) -> Response:
    """The patient handout; ``?large=1`` for large print."""
    return _handout(exam_id, None)


@bp.get("/exams/<exam_id>/revisions/<int:number>/summary.pdf")
def revision_summary_pdf(exam_id: str, number: int) -> Response:
    """A signed revision's clinician summary, as stored at its signature."""
    return _summary(exam_id, number)


@bp.get("/exams/<exam_id>/revisions/<int:number>/handout.pdf")
def revision_handout_pdf(exam_id: str, number: int) -> Response:
    """A signed revision's patient handout (``?large=1``), as stored at its signature."""
    return _handout(exam_id, number)
