"""Score a patient-reported outcome measure from its own Questionnaire: scoring as data.

Why: an instrument's scoring rules (item weights, totals, subscales, what to do with a
missing answer) belong to the instrument, so they live in its Questionnaire as SDC
``itemWeight`` on each answerOption and ``sdc-questionnaire-calculatedExpression``
(FHIRPath) on each score item — the same definition LHC-Forms and other SDC renderers
evaluate. A clinic can add an instrument by dropping in a conforming file, and a score a
client sends is never trusted: ``score`` recomputes every calculated item and overwrites
whatever answer the response carried there.

The product evaluates FHIRPath with fhirpathpy, which lacks the SDC ``weight()``
function; it is supplied through fhirpathpy's own ``userInvocationTable`` option (the
upstream extension point, same shape as fhirpath.js's), not by rewriting expressions.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from antlr4 import CommonTokenStream, InputStream, Token
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from ..errors import KnowledgeError
from . import terminology as t

EXT_CALCULATED = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
#: SDC 4 / Extensions Pack name; R4's ``ordinalValue`` is read too (same meaning).
EXT_ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
EXT_ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
#: The value[x] key a calculated item's answer takes, by item type.
VALUE_KEYS = {"integer": "valueInteger", "decimal": "valueDecimal", "string": "valueString",
              "choice": "valueCoding", "boolean": "valueBoolean"}


@dataclass(frozen=True)
class Calculation:
    """One score item: its linkId, type and compiled FHIRPath."""

    link_id: str
    type: str
    expression: str
    evaluate: Callable[..., list[Any]]


@dataclass(frozen=True, eq=False)
class Instrument:
    """A scored Questionnaire (a PROM), checked at start-up and ready to score."""

    id: str
    url: str
    version: str
    title: str
    resource: Mapping[str, Any]
    weights: Mapping[tuple[str, str], Decimal]
    calculations: tuple[Calculation, ...]
    #: Each answerable item's linkId -> the (system, code) its options allow (empty: not coded).
    options: Mapping[str, frozenset[tuple[str, str]]]
    #: Where the owner's item wording is found when this Questionnaire does not carry it
    #: (its ``item-wording-not-included`` extension); None when the items carry the wording.
    #: Data, not a guess from the text: only the file knows whether its text is the
    #: published wording, and a clinic that adds the wording removes the extension.
    wording_not_included: str | None = None

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}"


def _wording_not_included(resource: Mapping[str, Any], source: str) -> str | None:
    """The ``item-wording-not-included`` extension's value (where the wording is found)."""
    found = [e for e in resource.get("extension") or []
             if e.get("url") == t.EXT_ITEM_WORDING_NOT_INCLUDED]
    if not found:
        return None
    value = found[0].get("valueString")
    if len(found) > 1 or not isinstance(value, str) or not value.strip():
        raise KnowledgeError(source, "extension", "item-wording-not-included takes one "
                                                  "valueString: where the owner's wording is found")
    return value


def is_scored(resource: Mapping[str, Any]) -> bool:
    """A Questionnaire with at least one calculatedExpression is an instrument to score."""
    return any(_calculated(item) for item in _walk(resource.get("item") or []))


def parse(resource: Mapping[str, Any], *, source: str) -> Instrument:
    """Read and check a scored Questionnaire; a faulty one stops start-up here.

    Checks: every option of a choice item has a coding and a weight; one coding has one
    weight throughout (so ``weight()`` on a response's Coding is unambiguous without the
    item it came from); score items are readOnly, have no ``initial`` (SDC) and hold a
    FHIRPath expression that compiles and evaluates on an empty response.
    """
    for key in ("id", "url", "version"):
        if not isinstance(resource.get(key), str) or not resource[key]:
            raise KnowledgeError(source, key, "required for a published Questionnaire")
    weights: dict[tuple[str, str], Decimal] = {}
    calculations = []
    options: dict[str, frozenset[tuple[str, str]]] = {}
    top = {item.get("linkId") for item in resource.get("item") or []}
    for item in _walk(resource.get("item") or []):
        link_id = item.get("linkId", "item")
        for n, option in enumerate(item.get("answerOption") or []):
            coding = option.get("valueCoding")
            weight = _weight(option)
            if item.get("type") != "choice" or _calculated(item) is not None:
                continue  # a score item's options are its results, not weighted answers
            if not isinstance(coding, Mapping) or not coding.get("system") or not coding.get("code"):
                raise KnowledgeError(source, f"{link_id}.answerOption[{n}]",
                                     "a scored option needs valueCoding with system and code")
            if weight is None:
                raise KnowledgeError(source, f"{link_id}.answerOption[{n}]",
                                     f"option {coding['code']!r} has no itemWeight")
            key = (coding["system"], coding["code"])
            if weights.setdefault(key, weight) != weight:
                raise KnowledgeError(source, f"{link_id}.answerOption[{n}]",
                                     f"option {coding['code']!r} has two different weights")
        ext = _calculated(item)
        if ext is None:
            if item.get("type") not in ("group", "display"):
                options[link_id] = frozenset(
                    (o["valueCoding"].get("system"), o["valueCoding"].get("code"))
                    for o in item.get("answerOption") or [] if "valueCoding" in o)
            continue
        expression = ext.get("valueExpression") or {}
        if expression.get("language") != "text/fhirpath" or not expression.get("expression"):
            raise KnowledgeError(source, link_id, "calculatedExpression needs a text/fhirpath "
                                                  "expression")
        if link_id not in top:
            raise KnowledgeError(source, link_id, "a score item must be a top-level item")
        if item.get("type") not in VALUE_KEYS:
            raise KnowledgeError(source, link_id, f"a score item cannot be {item.get('type')!r}")
        if "initial" in item or not item.get("readOnly"):
            raise KnowledgeError(source, link_id, "a score item is readOnly and has no initial "
                                                  "value (SDC)")
        calculations.append(Calculation(link_id, item["type"], expression["expression"],
                                        _compile(expression["expression"], weights,
                                                 source, link_id)))
    if not calculations:
        raise KnowledgeError(source, "item", "no calculatedExpression: nothing to score")
    instrument = Instrument(id=resource["id"], url=resource["url"], version=resource["version"],
                            title=resource.get("title") or resource["id"], resource=resource,
                            weights=MappingProxyType(weights), calculations=tuple(calculations),
                            options=MappingProxyType(options),
                            wording_not_included=_wording_not_included(resource, source))
    empty = {"resourceType": "QuestionnaireResponse", "status": "in-progress",
             "questionnaire": instrument.canonical}
    for calc in instrument.calculations:
        try:
            _run(instrument, calc, empty)
        except Exception as exc:  # an unknown function or a type error: name it now
            raise KnowledgeError(source, calc.link_id, f"calculatedExpression fails: {exc}") from exc
    return instrument


def score(instrument: Instrument, response: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the response with every score item recomputed from the answers.

    A client's answer on a score item is dropped first, never used; a score whose
    expression yields nothing (e.g. too few items answered) has no answer at all.
    Raises ScoringError for an item the instrument does not have or a coded answer that
    is not one of the item's options: either would silently change a score (an unknown
    code has no weight, yet counts as answered).
    """
    check(instrument, response)
    result = copy.deepcopy(dict(response))
    by_link = {c.link_id: c for c in instrument.calculations}
    items = [i for i in result.get("item") or [] if i.get("linkId") not in by_link]
    result["item"] = items
    values = {c.link_id: _run(instrument, c, result) for c in instrument.calculations}
    ordered = []
    for q_item in instrument.resource.get("item") or []:
        link_id = q_item.get("linkId")
        if link_id in by_link:
            value = values[link_id]
            if value is not None:
                ordered.append({"linkId": link_id, "text": q_item.get("text", link_id),
                                "answer": [{VALUE_KEYS[by_link[link_id].type]: value}]})
        else:
            ordered.extend(i for i in items if i.get("linkId") == link_id)
    result["item"] = ordered
    if not ordered:
        del result["item"]
    return result


class ScoringError(ValueError):
    """The answers cannot be scored as they are (named item and reason)."""


def check(instrument: Instrument, response: Mapping[str, Any]) -> None:
    """Refuse answers the instrument cannot score faithfully (see ``score``)."""
    calculated = {c.link_id for c in instrument.calculations}
    for item in response.get("item") or []:
        link_id = item.get("linkId")
        if link_id in calculated:
            continue
        if link_id not in instrument.options:
            raise ScoringError(f"{link_id}: not an item of {instrument.id}")
        allowed = instrument.options[link_id]
        for answer in item.get("answer") or []:
            if not allowed:
                continue
            coding = answer.get("valueCoding") or {}
            if (coding.get("system"), coding.get("code")) not in allowed:
                raise ScoringError(f"{link_id}: {coding.get('code') or answer!r} is not one "
                                   "of its answer options")


def scores(instrument: Instrument, response: Mapping[str, Any]) -> dict[str, Any]:
    """Each score item's value (None: not scored), computed from the response's answers."""
    check(instrument, response)
    return {c.link_id: _run(instrument, c, score_free(instrument, response))
            for c in instrument.calculations}


def score_free(instrument: Instrument, response: Mapping[str, Any]) -> dict[str, Any]:
    """The response without any answer on a score item (what the expressions may see)."""
    link_ids = {c.link_id for c in instrument.calculations}
    result = dict(response)
    result["item"] = [i for i in response.get("item") or [] if i.get("linkId") not in link_ids]
    return result


def _run(instrument: Instrument, calc: Calculation, response: Mapping[str, Any]) -> Any:
    found = calc.evaluate(response, {"resource": response,
                                     "questionnaire": instrument.resource})
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(f"{calc.link_id}: the expression gave {len(found)} values")
    value = found[0]
    if isinstance(value, Mapping):  # a Coding picked from the Questionnaire: not shared
        return copy.deepcopy(dict(value))
    if calc.type == "integer":
        if isinstance(value, bool) or Decimal(str(value)) != int(Decimal(str(value))):
            raise ValueError(f"{calc.link_id}: {value!r} is not an integer")
        return int(Decimal(str(value)))
    if calc.type == "decimal":
        number = Decimal(str(value))
        return int(number) if number == number.to_integral_value() else float(number)
    return value


def _compile(expression: str, weights: Mapping[tuple[str, str], Decimal], source: str,
             link_id: str) -> Callable[..., list[Any]]:
    """Compile with the SDC ``weight()`` function (reads the weights table when called,
    so options parsed after this item count too)."""
    def weight(inputs: list[Any]) -> list[Any]:
        found = []
        for coding in inputs:
            if isinstance(coding, Mapping):
                w = weights.get((coding.get("system"), coding.get("code")))
                if w is not None:
                    found.append(int(w) if w == w.to_integral_value() else w)
        return found

    table = {"weight": {"fn": weight}, "ordinal": {"fn": weight}}
    try:
        check_syntax(expression)
        return compile_fhirpath(expression, models["r4"], {"userInvocationTable": table})
    except Exception as exc:
        raise KnowledgeError(source, link_id, f"calculatedExpression does not parse: {exc}") from exc


class _Raise(ErrorListener):
    def syntaxError(self, recognizer, offendingSymbol, line, column, msg, e):  # noqa: N802
        raise ValueError(f"column {column + 1}: {msg}")


def check_syntax(expression: str) -> None:
    """Raise on a FHIRPath syntax error.

    Why: fhirpathpy's ``parse`` installs ANTLR's silent error listener, so
    ``%resource.item.(`` compiles and quietly yields nothing — a score that is never
    computed. fhirpath.js (LHC-Forms) rejects it. Same generated parser, a listener that
    raises, and the whole text must be consumed.
    """
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(_Raise())
    tokens = CommonTokenStream(lexer)
    parser = FHIRPathParser(tokens)
    parser.removeErrorListeners()
    parser.addErrorListener(_Raise())
    parser.expression()
    if tokens.LA(1) != Token.EOF:
        raise ValueError(f"unexpected {tokens.LT(1).text!r} after the expression")


def _weight(option: Mapping[str, Any]) -> Decimal | None:
    for ext in [*(option.get("extension") or []),
                *((option.get("valueCoding") or {}).get("extension") or [])]:
        if ext.get("url") in (EXT_ITEM_WEIGHT, EXT_ORDINAL_VALUE) and "valueDecimal" in ext:
            return Decimal(str(ext["valueDecimal"]))
    return None


def _calculated(item: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((e for e in item.get("extension") or [] if e.get("url") == EXT_CALCULATED), None)


def _walk(items: list[Mapping[str, Any]]):
    for item in items:
        yield item
        yield from _walk(item.get("item") or [])
