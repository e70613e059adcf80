"""The outcome measures (PROMs) of a visit: add one to an exam, save its answers, finish
it, remove it, and hand the visit's finished ones to the signature (``completed``).

A PROM belongs to its exam's record: it changes only while the exam is a draft or an
amendment (``adapters.prom_store`` refuses otherwise, ``LockedError``), and the
signature takes the finished ones (``completed``, contract K1 with ``exams.sign``).
Scores are never taken from a client: every save rebuilds the response from the plain
answers (``core.prom_answers``) and recomputes each score (``core.scoring``), and
``completed`` recomputes them once more from the stored answers.

Every write takes ``by`` and leaves one AuditEvent in the write's own transaction
(``trail``); the resource is ``QuestionnaireResponse/<prom id>`` of the exam's patient.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from ..adapters import prom_store, store as store_mod
from ..adapters.prom_store import PromRecord
from ..core import patient as patient_mod, prom_answers, scoring
from ..errors import AnswerError, InputError, NotFoundError
from . import trail
from .trail import By


def instrument_of(kb: Any, prom: PromRecord) -> scoring.Instrument:
    """The loaded instrument of a stored PROM (NotFoundError once it is no longer
    loaded: its answers stay stored, untouched)."""
    instrument = kb.instrument_for(prom.instrument)
    if instrument is None:
        raise NotFoundError(f"The questionnaire {prom.instrument} is no longer loaded.")
    return instrument


def _write(by: By, interaction: str, what: str) -> Any:
    def events(prom: PromRecord) -> list[Mapping[str, Any]]:
        return [trail.event(by, interaction, resource=f"QuestionnaireResponse/{prom.id}",
                            patient_id=prom.patient_id, what=what)]
    return events


def _response(instrument: scoring.Instrument, checked: prom_answers.Checked, prom_id: str,
              patient_record: store_mod.PatientRecord, now: dt.datetime,
              status: str) -> dict[str, Any]:
    return prom_answers.response(instrument, checked, prom_id=prom_id,
                                 subject=patient_mod.reference(patient_record.resource),
                                 authored=now.isoformat(timespec="seconds"), status=status)


def add(store: store_mod.Store, kb: Any, exam: store_mod.ExamRecord,
        patient_record: store_mod.PatientRecord, instrument_id: Any, *,
        now: dt.datetime, by: By) -> PromRecord:
    """Add the instrument (one of ``kb.instruments``, by id) to the visit, unanswered."""
    instrument = kb.instruments.get(instrument_id) if isinstance(instrument_id, str) else None
    if instrument is None:
        raise InputError("Choose one of the questionnaires offered.", expression="instrument",
                         status=422)
    prom_id = str(uuid.uuid4())
    checked = prom_answers.check(instrument, {})
    added_by = by.actor.username if by.actor is not None else "command line"
    return prom_store.add(store, exam.id, instrument.canonical, answers={},
                          response=_response(instrument, checked, prom_id, patient_record,
                                             now, "in-progress"),
                          added_by=added_by, prom_id=prom_id,
                          audit=_write(by, "create", "outcome questionnaire added"))


def save(store: store_mod.Store, kb: Any, prom: PromRecord,
         patient_record: store_mod.PatientRecord, *, expected_version: int,
         answers: Mapping[str, Any], now: dt.datetime, by: By
         ) -> tuple[PromRecord, prom_answers.Checked]:
    """Store the answers as entered (a wrong value is kept and reported, never dropped)
    with the response of the valid ones, every score recomputed. Refused: a value that
    is not one value (InputError 422, nothing saved), a stale version (ConflictError),
    a finished PROM (ConflictError), a signed exam (LockedError)."""
    instrument = instrument_of(kb, prom)
    wrong = prom_answers.shape_errors(instrument, answers)
    if wrong:
        raise InputError("Not saved: an answer has the wrong shape.", status=422,
                         issues=[(k, " ".join(v)) for k, v in wrong.items()])
    checked = prom_answers.check(instrument, answers)
    saved = prom_store.save(store, prom.id, expected_version=expected_version,
                            answers=checked.raw,
                            response=_response(instrument, checked, prom.id, patient_record,
                                               now, "in-progress"),
                            audit=_write(by, "update", "outcome questionnaire saved"))
    return saved, checked


def finish(store: store_mod.Store, kb: Any, prom: PromRecord,
           patient_record: store_mod.PatientRecord, *, expected_version: int,
           now: dt.datetime, by: By) -> PromRecord:
    """Mark the stored answers finished (status completed, authored now). Refused with
    every problem by linkId (``AnswerError``) while an answer is wrong or a score cannot
    be computed yet (e.g. a LEFS item unanswered)."""
    instrument = instrument_of(kb, prom)
    checked = prom_answers.check(instrument, prom.answers)
    errors = {k: list(v) for k, v in checked.errors.items()}
    if not errors:
        draft = _response(instrument, checked, prom.id, patient_record, now, "completed")
        missing = prom_answers.unscored(instrument, draft)
        if missing:
            answered = set(checked.raw)
            for question in prom_answers.questions(instrument):
                if question.link_id not in answered and question.type == "choice":
                    errors[question.link_id] = ["Answer this question."]
            if not errors:
                errors["score"] = ["Answer enough questions for a score."]
    if errors:
        raise AnswerError(errors)
    return prom_store.save(store, prom.id, expected_version=expected_version,
                           answers=checked.raw, response=draft, complete=True,
                           audit=_write(by, "update", "outcome questionnaire finished"))


def remove(store: store_mod.Store, prom: PromRecord, *, expected_version: int,
           by: By) -> PromRecord:
    """Take an unfinished PROM off the visit (a finished one stays with the record)."""
    return prom_store.remove(store, prom.id, expected_version=expected_version,
                             audit=_write(by, "delete", "outcome questionnaire removed"))


def for_exam(store: store_mod.Store, exam_id: str) -> list[PromRecord]:
    """The visit's PROMs, in the order they were added."""
    return prom_store.for_exam(store, exam_id)


def scores(kb: Any, prom: PromRecord) -> dict[str, Any]:
    """A PROM's scores recomputed from its stored response (score linkId -> value)."""
    return scoring.scores(instrument_of(kb, prom), prom.response)


def completed(store: store_mod.Store, kb: Any, exam_id: str) -> list[dict[str, Any]]:
    """The visit's finished PROMs as scored QuestionnaireResponse JSON (status completed,
    ``questionnaire`` the instrument's ``url|version``, the patient as subject,
    ``authored`` when finished, every score recomputed here and written as its answer),
    in the order they were added (contract K1: what ``exams.sign`` records).

    Raises InputError naming the instrument while a PROM added to the visit is still
    unfinished: the signature waits until it is finished or removed."""
    found = []
    for prom in prom_store.for_exam(store, exam_id):
        instrument = kb.instrument_for(prom.instrument)
        title = instrument.title if instrument is not None else prom.instrument
        if not prom.finished:
            raise InputError(f"The {title} questionnaire is not finished: finish it or "
                             "remove it from the visit before signing.", status=422,
                             code="incomplete", expression=f"prom.{prom.id}")
        if instrument is None:
            raise InputError(f"The {title} questionnaire is no longer loaded, so its scores "
                             "cannot be checked.", status=422, expression=f"prom.{prom.id}")
        try:  # what is stored is checked again: it is what the record will keep
            found.append(scoring.score(instrument, prom.response))
        except scoring.ScoringError as exc:
            raise InputError(f"{title}: {exc}", status=422, code="invalid",
                             expression=f"prom.{prom.id}") from exc
    return found


def not_for_patients(instrument: scoring.Instrument) -> str | None:
    """Why this instrument is not handed to a patient (None: it may be), in the clinician's
    words: its Questionnaire says its items do not carry the owner's published wording
    (``item-wording-not-included``), and a patient must never answer placeholders."""
    if instrument.wording_not_included is None:
        return None
    return (f"{instrument.title} cannot be handed to the patient: its questions here carry "
            "numbers, not the owner's published wording. Fill it in with the patient from "
            f"the owner's paper form ({instrument.wording_not_included.rstrip('.')}).")


def hand_to_patient(store: store_mod.Store, kb: Any, session_id: str,
                    prom: PromRecord) -> None:
    """Patient mode: this session reaches only the PROM's pages until the clinician's
    password is entered again (``web.auth`` enforces it on every request). Refused
    (InputError 409) for a finished PROM and for an instrument without its wording."""
    if prom.finished:
        raise InputError("This questionnaire is finished already.", status=409)
    reason = not_for_patients(instrument_of(kb, prom))
    if reason is not None:
        raise InputError(reason, status=409, code="business-rule")
    prom_store.patient_mode(store, session_id, prom.id)


def back_to_clinician(store: store_mod.Store, session_id: str) -> None:
    """Leave patient mode (after the clinician re-authenticated)."""
    prom_store.patient_mode(store, session_id, None)
