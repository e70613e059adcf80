"""A PROM's answers as the tablet sends them (``{linkId: value}``) checked against its
Questionnaire and made into its scored QuestionnaireResponse.

Why plain answers: the tablet (and the patient's one-question screens) send a code, a
number or a text per item, as the exam's autosave does; the response is built here,
from the instrument alone, so a client can never put a score, a code the item does not
offer or an item the instrument lacks into the record. Score items sent by a client are
ignored (``scoring.score`` recomputes them); every other problem is reported by linkId
in words a patient or clinician understands, the value kept as entered.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from . import scoring
from . import terminology as t

EXT_MIN = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX = "http://hl7.org/fhir/StructureDefinition/maxValue"
#: Longest text answer kept (a PSFS activity is a few words).
TEXT_LIMIT = 200
ID_PROM_RESPONSE = f"{t.BASE}/id/prom-response"


@dataclass(frozen=True)
class Question:
    """One answerable item of an instrument, as its screens show it."""

    link_id: str
    type: str
    text: str
    options: tuple[tuple[str, str], ...] = ()  # (code, display)
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class Checked:
    """Answers checked: the raw values kept, the valid response items, the problems."""

    raw: Mapping[str, Any]
    items: tuple[Mapping[str, Any], ...]
    errors: Mapping[str, list[str]] = field(default_factory=dict)


def questions(instrument: scoring.Instrument) -> list[Question]:
    """The answerable items in order (score items are not questions)."""
    scored = {c.link_id for c in instrument.calculations}
    found = []
    for item in instrument.resource.get("item") or []:
        if item.get("linkId") in scored or item.get("type") in ("group", "display"):
            continue
        extensions = {e.get("url"): e for e in item.get("extension") or []}
        found.append(Question(
            link_id=item["linkId"], type=item.get("type", "string"),
            text=item.get("text") or item["linkId"],
            options=tuple((o["valueCoding"]["code"], o["valueCoding"].get("display")
                           or o["valueCoding"]["code"])
                          for o in item.get("answerOption") or [] if "valueCoding" in o),
            minimum=(extensions.get(EXT_MIN) or {}).get("valueInteger"),
            maximum=(extensions.get(EXT_MAX) or {}).get("valueInteger")))
    return found


def instructions(instrument: scoring.Instrument) -> list[str]:
    """The texts of the top-level display items (the instrument's own instructions, e.g.
    STarT Back's "Thinking about the last 2 weeks ..."), in order: shown with the
    questions, never answered."""
    return [item["text"] for item in instrument.resource.get("item") or []
            if item.get("type") == "display" and item.get("text")]


def score_items(instrument: scoring.Instrument) -> list[tuple[str, str]]:
    """(linkId, text) of each score item, in order."""
    by_link = {i.get("linkId"): i for i in instrument.resource.get("item") or []}
    return [(c.link_id, by_link[c.link_id].get("text") or c.link_id)
            for c in instrument.calculations]


def shape_errors(instrument: scoring.Instrument, raw: Any) -> dict[str, list[str]]:
    """Values that cannot be kept even as entered (a list, an object): refused whole."""
    if not isinstance(raw, Mapping):
        return {"answers": ["Expected an object of answers by question."]}
    return {k: ["An answer is one value."] for k, v in raw.items()
            if not isinstance(k, str) or not (v is None or isinstance(v, (str, int, float)))
            or isinstance(v, bool)}


def check(instrument: scoring.Instrument, raw: Mapping[str, Any]) -> Checked:
    """Keep the answers to the instrument's questions (empty ones dropped), build a
    response item for each valid one, and name each problem by linkId."""
    kept: dict[str, Any] = {}
    items: list[dict[str, Any]] = []
    errors: dict[str, list[str]] = {}
    for question in questions(instrument):
        value = raw.get(question.link_id)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        kept[question.link_id] = value
        answer, problem = _answer(instrument, question, value)
        if problem:
            errors[question.link_id] = [problem]
        else:
            items.append({"linkId": question.link_id, "text": question.text,
                          "answer": [answer]})
    return Checked(kept, tuple(items), errors)


def response(instrument: scoring.Instrument, checked: Checked, *, prom_id: str,
             subject: Mapping[str, Any], authored: str, status: str) -> dict[str, Any]:
    """The QuestionnaireResponse of the valid answers with every score recomputed."""
    built: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse", "id": prom_id,
        "identifier": {"system": ID_PROM_RESPONSE, "value": prom_id},
        "questionnaire": instrument.canonical, "status": status,
        "subject": dict(subject), "authored": authored}
    if checked.items:
        built["item"] = [dict(i) for i in checked.items]
    return scoring.score(instrument, built)


def unscored(instrument: scoring.Instrument, response_: Mapping[str, Any]) -> list[str]:
    """The score items the answers do not yet give a value (finishing needs none)."""
    values = scoring.scores(instrument, response_)  # recomputed, never read back
    return [link_id for link_id, text in score_items(instrument) if values[link_id] is None]


def _answer(instrument: scoring.Instrument, question: Question,
            value: Any) -> tuple[dict[str, Any], str | None]:
    if question.type == "choice":
        coding = next((o["valueCoding"] for item in instrument.resource["item"]
                       if item.get("linkId") == question.link_id
                       for o in item.get("answerOption") or []
                       if o.get("valueCoding", {}).get("code") == value), None)
        if coding is None:
            return {}, "Choose one of the answers shown."
        return {"valueCoding": {k: coding[k] for k in ("system", "code", "display")
                                if k in coding}}, None
    if question.type in ("integer", "decimal"):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return {}, "Enter a number."
        if not number.is_finite() or (question.type == "integer"
                                      and number != number.to_integral_value()):
            return {}, "Enter a whole number."
        low, high = question.minimum, question.maximum
        if (low is not None and number < low) or (high is not None and number > high):
            return {}, f"Enter a number from {low} to {high}."
        if question.type == "integer":
            return {"valueInteger": int(number)}, None
        return {"valueDecimal": float(number)}, None
    text = str(value).strip()
    if len(text) > TEXT_LIMIT:
        return {}, f"Keep this to {TEXT_LIMIT} characters."
    if any(ord(c) < 32 and c not in "\t" for c in text):
        return {}, "Use letters, numbers and punctuation only."
    return {"valueString": text}, None
