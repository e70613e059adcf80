"""The outcome measures (PROMs) on the FHIR API: ``$extract`` and ``$populate`` of a
scored Questionnaire, called from the routes in ``fhir_api`` (which declare the scopes).

Why apart: a PROM takes another path than the exam (no observation mappings, no
decision support, nothing prefilled), and keeping it here keeps ``fhir_api`` small.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from flask import Response

from ..core import bundle, fhir_models, json_input, outcome, patient as patient_mod
from ..core import prom_extract
from ..core.scoring import Instrument
from ..errors import InputError
from .errors import fhir_response
from .fhir_rest import base_url, kb


def instrument_answered(data: Any) -> Instrument | None:
    """The outcome measure a QuestionnaireResponse answers (by its canonical), if any."""
    if not isinstance(data, Mapping) or data.get("resourceType") != "QuestionnaireResponse":
        return None
    canonical = data.get("questionnaire")
    return kb().instrument_for(canonical) if isinstance(canonical, str) and canonical else None


def extract(instrument: Instrument, response: Mapping[str, Any],
            patient: Mapping[str, Any] | None) -> Response:
    """$extract of a PROM: the response scored here and one Observation per score; a
    warning when too few answers were given to compute any score."""
    json_input.check(response, "The QuestionnaireResponse", numbers=False)
    subject = None
    if patient is not None:
        subject = patient_mod.reference(patient_mod.check(patient))
    result = prom_extract.extract(
        instrument, response, meanings=kb().interpretations, subject=subject,
        now=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    parameters: list[dict[str, Any]] = [{"name": "return", "resource": result}]
    if bundle.extracted_nothing(result):
        parameters.append({"name": "issues", "resource": outcome.information(
            f"{instrument.title}: too few answers to compute any score; only the response "
            "was extracted.", severity="warning")})
    return fhir_response({"resourceType": "Parameters", "parameter": parameters})


def instrument_named(data: Any) -> Instrument | None:
    """The outcome measure a type-level $populate names (canonical or Reference), if any."""
    if not isinstance(data, Mapping) or data.get("resourceType") != "Parameters":
        return None
    parts = data.get("parameter")
    if not isinstance(parts, list):  # the exam's $populate refuses it with an outcome
        return None
    for part in parts:
        if not isinstance(part, Mapping) or part.get("name") != "questionnaire":
            continue
        canonical = part.get("valueCanonical") or part.get("valueUri")
        if isinstance(canonical, str) and canonical:
            return kb().instrument_for(canonical)
        value = part.get("valueReference")
        reference = value.get("reference") if isinstance(value, Mapping) else None
        if isinstance(reference, str):
            ref = reference.removeprefix(base_url() + "/")
            if ref.startswith("Questionnaire/"):
                return kb().instruments.get(ref.removeprefix("Questionnaire/"))
            return kb().instrument_for(reference)
    return None


def populate(instrument: Instrument, subject: Mapping[str, Any] | None) -> Response:
    """$populate of an outcome measure: an empty in-progress response for the subject.

    Why empty: every answer is the patient's own report of today; nothing known about
    them (not even an earlier score) may be put in their mouth."""
    response = {"resourceType": "QuestionnaireResponse", "questionnaire": instrument.canonical,
                "status": "in-progress", "subject": dict(subject or {}),
                "authored": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    problems = fhir_models.validate(response)
    if problems:
        raise InputError("The subject given is not a valid FHIR Reference.", status=422,
                         issues=[(None, f"The subject given is not a valid FHIR Reference: {p}")
                                 for p in problems])
    return fhir_response({"resourceType": "Parameters",
                          "parameter": [{"name": "response", "resource": response}]})
