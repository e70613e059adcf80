"""The patient context that travels beside the answers: reference and age."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from ..errors import AnswerError, InputError
from . import fhir_models

AGE_LINK_ID = "patient.age-years"
#: The exam dictionary's range for patient.age-years.
MAX_AGE = 120


def check(patient: Any) -> Mapping[str, Any]:
    """Refuse anything that is not a structurally valid FHIR Patient."""
    if not isinstance(patient, Mapping) or patient.get("resourceType") != "Patient":
        raise InputError("Expected a FHIR Patient resource.", expression="Patient")
    problems = fhir_models.validate(dict(patient))
    if problems:
        raise InputError("The Patient is not valid FHIR R4.",
                         issues=[(f"Patient.{p.partition(': ')[0]}", p.partition(": ")[2])
                                 for p in problems])
    return patient


def reference(patient: Mapping[str, Any]) -> dict[str, Any]:
    """A Reference to the patient: literal when it has an id, logical by identifier else."""
    ref: dict[str, Any] = {}
    if patient.get("id"):
        ref["reference"] = f"Patient/{patient['id']}"
    identifiers = [i for i in patient.get("identifier") or [] if i.get("value")]
    if identifiers:
        ref["identifier"] = {k: identifiers[0][k] for k in ("system", "value")
                             if k in identifiers[0]}
    name = display_name(patient)
    if name:
        ref["display"] = name
    return ref


def age_on(birth_date: str, on: dt.date) -> int:
    """Completed years between a FHIR birthDate (YYYY[-MM[-DD]]) and ``on``."""
    parts = [int(p) for p in birth_date.split("-")]
    born = dt.date(parts[0], parts[1] if len(parts) > 1 else 7, parts[2] if len(parts) > 2 else 1)
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def age_of(patient: Mapping[str, Any] | None, on: dt.date) -> int | None:
    """The age ``patient.age-years`` takes from the Patient's birthDate on ``on``: None
    when there is no birthDate; InputError when the birthDate is unreadable or gives an
    age outside the exam's range (born after ``on``, or older than MAX_AGE).

    The one home of that rule: the pipeline refuses such a Patient, ``$populate`` reports
    it as a warning and fills nothing.
    """
    birth_date = (patient or {}).get("birthDate")
    if not birth_date:
        return None
    try:
        age = age_on(birth_date, on)
    except (ValueError, TypeError, AttributeError):
        raise InputError(f"The Patient's birthDate {birth_date!r} is not a FHIR date.",
                         expression="Patient.birthDate", status=422) from None
    if age < 0:
        raise InputError(f"The Patient's birthDate {birth_date} is after the exam date "
                         f"{on.isoformat()}.", expression="Patient.birthDate",
                         status=422, code="business-rule")
    if age > MAX_AGE:
        raise InputError(f"The Patient's birthDate {birth_date} gives an age of {age}; the "
                         f"exam records ages up to {MAX_AGE}.", expression="Patient.birthDate",
                         status=422, code="business-rule")
    return age


def prefill_age(answers: Mapping[str, tuple[Any, ...]], patient: Mapping[str, Any] | None,
                on: dt.date) -> dict[str, tuple[Any, ...]]:
    """Fill ``patient.age-years`` from birthDate; refuse an answer that contradicts it.

    A partial birthDate (year only) gives an age that may be one year off; it is only
    used to fill a missing answer, never to contradict a recorded one.
    """
    result = dict(answers)
    age = age_of(patient, on)
    if age is None:
        return result
    birth_date = (patient or {})["birthDate"]
    given = answers.get(AGE_LINK_ID)
    if given is None:
        result[AGE_LINK_ID] = (age,)
    elif len(birth_date) == 10 and given[0] != age:
        raise AnswerError({AGE_LINK_ID: [
            f"{given[0]} does not match the Patient's birthDate {birth_date} "
            f"(age {age} on {on.isoformat()})."]})
    return result


def display_name(patient: Mapping[str, Any], *, family_first: bool = False) -> str:
    """The first usable name: its text, else "Given Family" (or "Family, Given" for
    lists and headers, with ``family_first``); "" when the Patient has none."""
    for name in patient.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        given = " ".join(p for p in name.get("given", []) if p)
        family = name.get("family", "")
        if family_first and family and given:
            text = f"{family}, {given}"
        else:
            text = " ".join(p for p in (given, family) if p)
        if text:
            return text
    return ""
