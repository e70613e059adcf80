"""SDC $populate: an exam started from what is already known about the patient.

The SMART launch and the FHIR API's ``Questionnaire/$populate`` both start an exam from a
Patient (and maybe an Encounter) and want the same thing back: the answers that could be
filled (today only ``patient.age-years``, from birthDate), the in-progress
QuestionnaireResponse holding them, and warnings for what could not be filled. Pure: the
caller gives the date (``on``) and the authored time; nothing here reads a clock, a store
or the network. The age rule has one home, ``patient.age_of``; the response is built by
``drafts.response``, as the tablet builds its autosaved drafts.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from . import drafts, patient as patient_mod
from .questionnaire import Form
from .responses import Context

#: Why nothing was prefilled when the Patient carries no birthDate.
NO_BIRTH_DATE = (f"The Patient has no birthDate: {patient_mod.AGE_LINK_ID} was not filled; "
                 "ask the patient.")
NO_PATIENT = (f"No Patient was given: {patient_mod.AGE_LINK_ID} was not filled; "
              "ask the patient.")


@dataclass(frozen=True)
class Populated:
    """What $populate produced: the plain answers filled, the in-progress response
    holding them, and human-readable warnings (they quote only what the caller gave)."""

    answers: dict[str, Any]
    response: dict[str, Any]
    issues: tuple[str, ...]


def populate(form: Form, patient: Mapping[str, Any] | None, *, on: dt.date,
             subject: Mapping[str, Any] | None = None,
             encounter: Mapping[str, Any] | None = None,
             authored: str | None = None) -> Populated:
    """Prefill ``form`` for ``patient`` as of the date ``on``.

    ``subject`` defaults to ``patient.reference(patient)``; ``authored`` (a FHIR dateTime)
    is left out of the response when not given. An age outside the exam's range (a
    birthDate after ``on``, or over ``patient.MAX_AGE`` years) or an unreadable birthDate
    fills nothing and says why in ``issues``; it never raises.
    """
    answers: dict[str, Any] = {}
    issues: list[str] = []
    if patient_mod.AGE_LINK_ID in form.index:
        if patient is None:
            issues.append(NO_PATIENT)
        elif not patient.get("birthDate"):
            issues.append(NO_BIRTH_DATE)
        else:
            try:
                age = patient_mod.age_of(patient, on)
            except InputError as error:
                issues.append(f"{error.message} {patient_mod.AGE_LINK_ID} was not filled.")
            else:
                answers[patient_mod.AGE_LINK_ID] = age
    checked = drafts.check(form, answers)
    for link_id, messages in checked.errors.items():  # the form's own range, if narrower
        issues += [f"{link_id}: {m} It was not filled." for m in messages]
        answers.pop(link_id, None)
    if subject is None and patient is not None:
        subject = patient_mod.reference(patient)
    context = Context(subject=dict(subject) if subject else None,
                      encounter=dict(encounter) if encounter else None,
                      authored=authored, status="in-progress")
    response = drafts.response(form, drafts.check(form, answers), context)
    return Populated(answers, response, tuple(issues))
