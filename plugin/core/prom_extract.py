"""SDC ``$extract`` of a completed outcome measure (PROM): the response and one
Observation per score, as a transaction Bundle of conditional creates.

Why its own path: a PROM has no observation mappings — its Questionnaire carries its
scoring (``core.scoring``) and each score item its code (LOINC where verified, else the
project's ``outcome-measures`` CodeSystem), so the Observations follow from the
instrument alone. The scores are always recomputed here: a client's score is never
trusted. What a score means (a risk band) goes in a ``note``: no standard
ObservationInterpretation code says "STarT Back medium risk".
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InputError
from . import fhir_models, interpretation, scoring
from . import terminology as t
from .bundle import full_url

ID_PROM_OBSERVATION = f"{t.BASE}/id/prom-observation"
SURVEY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                      "code": "survey", "display": "Survey"}]}
#: A decimal score has no UCUM unit of its own: UCUM's annotation ``{score}``.
SCORE_UNIT = {"unit": "score", "system": "http://unitsofmeasure.org", "code": "{score}"}
FINISHED = ("completed", "amended")


def extract(instrument: scoring.Instrument, response: Mapping[str, Any], *,
            meanings: Mapping[str, interpretation.Meaning],
            subject: Mapping[str, Any] | None = None, now: str) -> dict[str, Any]:
    """The transaction Bundle for a finished PROM response (InputError when it is not
    valid FHIR, not finished, or holds an item or code the instrument does not have).
    ``subject`` (from a Patient parameter) is used when the response names none;
    ``now`` stands in for a missing ``authored``."""
    scored = checked(instrument, response)
    if subject is not None and "subject" not in scored:
        scored["subject"] = dict(subject)
    scored.setdefault("authored", now)
    scored.pop("id", None)
    scored.pop("meta", None)
    key = hashlib.sha256(json.dumps({k: v for k, v in scored.items() if k != "identifier"},
                                    sort_keys=True).encode()).hexdigest()[:32]
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": entries(instrument, scored, f"prom-{key}", meanings=meanings)}


def checked(instrument: scoring.Instrument, response: Mapping[str, Any]) -> dict[str, Any]:
    """The response re-checked and re-scored on the server: valid FHIR R4, finished,
    every answer one the instrument can score; a copy with every score recomputed and
    ``questionnaire`` the instrument's canonical (InputError otherwise). ``$extract`` and the signature of a visit's PROMs both start here."""
    problems = fhir_models.validate(dict(response))
    if problems:
        raise InputError("The QuestionnaireResponse is not valid FHIR R4: "
                         + "; ".join(problems[:5]), expression="QuestionnaireResponse")
    if response.get("status") not in FINISHED:
        raise InputError(f"Only a completed response is extracted; status is "
                         f"{response.get('status')!r}.", status=422,
                         code="business-rule", expression="QuestionnaireResponse.status")
    _check_answers(instrument, response)
    try:
        scored = scoring.score(instrument, response)
    except scoring.ScoringError as exc:
        raise InputError(f"{instrument.title}: {exc}", status=422, code="business-rule",
                         expression="QuestionnaireResponse.item") from exc
    scored["questionnaire"] = instrument.canonical
    return scored


def entries(instrument: scoring.Instrument, scored: Mapping[str, Any], key: str, *,
            meanings: Mapping[str, interpretation.Meaning]) -> list[dict[str, Any]]:
    """Conditional-create entries for a scored, finished response (``checked``) and one
    survey Observation per score it has: the response's identifier is ``key`` (stable,
    so a retry never duplicates), each Observation's ``<key>-<score linkId>``."""
    scored = dict(scored)
    qr_identifier = {"system": t.ID_QUESTIONNAIRE_RESPONSE, "value": key}
    scored["identifier"] = qr_identifier
    qr_url = full_url(qr_identifier)
    result = [_entry(qr_url, scored, qr_identifier)]
    values = score_values(instrument, scored)
    for calc in instrument.calculations:
        if calc.link_id not in values:
            continue  # not scorable from these answers: no Observation
        observation = _observation(instrument, calc, values, scored, qr_url,
                                   meanings.get(calc.link_id))
        identifier = observation["identifier"][0]
        result.append(_entry(full_url(identifier), observation, identifier))
    return result


def visit_entries(proms: Sequence[tuple[scoring.Instrument, Mapping[str, Any]]], *,
                  exam_id: str, subject: Mapping[str, Any],
                  encounter: Mapping[str, Any] | None, author: Mapping[str, Any] | None,
                  meanings: Mapping[str, interpretation.Meaning]) -> list[dict[str, Any]]:
    """The entries of a visit's scored PROMs in the exam's record Bundle: each response
    about the exam's subject, in its encounter, authored by the signer (as the exam's
    response) with the patient as its source (they answered it), identified
    ``<exam id>/prom/<instrument id>`` (``/2``, ``/3`` for a repeat), so the same visit
    gives the same identifiers on every retry and amendment; then its Observations."""
    result: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for instrument, scored in proms:
        seen[instrument.id] = seen.get(instrument.id, 0) + 1
        key = f"{exam_id}/prom/{instrument.id}"
        if seen[instrument.id] > 1:
            key += f"/{seen[instrument.id]}"
        qr = {k: v for k, v in scored.items()
              if k not in ("id", "meta", "encounter", "author", "source", "identifier")}
        qr["subject"] = dict(subject)
        if encounter:
            qr["encounter"] = dict(encounter)
        if author:
            qr["author"] = dict(author)
        qr["source"] = dict(subject)
        result += entries(instrument, _ordered(qr), key, meanings=meanings)
    return result


#: A QuestionnaireResponse's elements in the order FHIR defines them (readable JSON).
_ORDER = ("resourceType", "identifier", "questionnaire", "status", "subject", "encounter",
          "authored", "author", "source", "item")


def _ordered(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {**{k: resource[k] for k in _ORDER if k in resource},
            **{k: v for k, v in resource.items() if k not in _ORDER}}


def score_values(instrument: scoring.Instrument, scored: Mapping[str, Any]) -> dict[str, Any]:
    """A scored response's score values by score linkId (a coded score: its Coding)."""
    calculated = {c.link_id for c in instrument.calculations}
    return {i["linkId"]: _value(i["answer"][0]) for i in scored.get("item") or []
            if i.get("linkId") in calculated and i.get("answer")}


def _observation(instrument: scoring.Instrument, calc: scoring.Calculation,
                 values: Mapping[str, Any], qr: Mapping[str, Any], qr_url: str,
                 meaning: interpretation.Meaning | None) -> dict[str, Any]:
    link_id = calc.link_id
    item = next(i for i in instrument.resource["item"] if i.get("linkId") == link_id)
    value = values[link_id]
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [{"system": ID_PROM_OBSERVATION,
                        "value": f"{qr['identifier']['value']}-{link_id}"}],
        "status": "final", "category": [SURVEY],
        "code": {"coding": [dict(c) for c in item.get("code") or []],
                 "text": item.get("text", link_id)},
        "effectiveDateTime": qr["authored"],
        "derivedFrom": [{"reference": qr_url, "type": "QuestionnaireResponse"}],
    }
    if "subject" in qr:
        observation["subject"] = dict(qr["subject"])
    if isinstance(value, Mapping):
        observation["valueCodeableConcept"] = {"coding": [
            {k: value[k] for k in ("system", "code", "display") if k in value}]}
    elif calc.type == "integer":
        observation["valueInteger"] = value
    else:
        observation["valueQuantity"] = {"value": value, **SCORE_UNIT}
    if meaning is not None:
        plain = {k: v for k, v in values.items() if not isinstance(v, Mapping)}
        said = interpretation.interpret(meaning, {**plain, link_id: values[link_id]})
        if said.band is not None:
            observation["note"] = [{"text": said.text}]
    return observation


#: The value[x] an answer to an item of each type carries.
ANSWER_KEYS = {"integer": "valueInteger", "decimal": "valueDecimal", "string": "valueString",
               "choice": "valueCoding", "boolean": "valueBoolean", "text": "valueString"}
EXT_MIN = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX = "http://hl7.org/fhir/StructureDefinition/maxValue"


def _check_answers(instrument: scoring.Instrument, response: Mapping[str, Any]) -> None:
    """Refuse an answer a score would misread: of the wrong type, out of the item's
    minValue/maxValue, several on a single-answer item, or a nested item (the
    instruments are flat). ``scoring.check`` covers unknown items and codes."""
    calculated = {c.link_id for c in instrument.calculations}
    by_link = {i.get("linkId"): i for i in instrument.resource.get("item") or []}
    for n, item in enumerate(response.get("item") or []):
        link_id = item.get("linkId")
        where = f"QuestionnaireResponse.item[{n}]"
        definition = by_link.get(link_id)
        if link_id in calculated or definition is None:
            continue  # a score is recomputed; an unknown item is scoring.check's to refuse
        answers = item.get("answer") or []
        problem = None
        if "item" in item or any("item" in a for a in answers):
            problem = "has nested items; this instrument has none"
        elif len(answers) > 1 and not definition.get("repeats"):
            problem = "has several answers; one is allowed"
        for answer in answers:
            key = ANSWER_KEYS.get(definition.get("type"))
            if problem is None and key is not None and key not in answer:
                problem = f"needs {key} (a {definition['type']} item)"
            value = answer.get(key) if key else None
            for ext in definition.get("extension") or []:
                bound = next((v for k, v in ext.items() if k.startswith("value")), None)
                if problem is None and isinstance(value, (int, float)) and bound is not None \
                        and ((ext.get("url") == EXT_MIN and value < bound)
                             or (ext.get("url") == EXT_MAX and value > bound)):
                    problem = f"{value} is outside {link_id}'s range"
        if problem:
            raise InputError(f"{instrument.title}: {link_id}: {problem}.", status=422,
                             code="business-rule", expression=where)


def _value(answer: Mapping[str, Any]) -> Any:
    return next(v for k, v in answer.items() if k.startswith("value"))


def _entry(url: str, resource: dict[str, Any], identifier: Mapping[str, str]) -> dict[str, Any]:
    return {"fullUrl": url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"],
                        "ifNoneExist": f"identifier={identifier['system']}|{identifier['value']}"}}
