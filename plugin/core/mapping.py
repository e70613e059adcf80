"""Observation mappings: what each answerable linkId becomes as an Observation.

The mapping file is the home of each Observation's code, category, value type, unit,
body site, laterality and interpretation. The Questionnaire repeats code, category and
unit in its SDC extraction extensions so that any SDC tool extracts the same thing;
``check`` refuses to start when the two disagree, or when a linkId is neither mapped
nor listed as deliberately not extracted.

A form that re-asks another form's questions (the follow-up re-tests the initial exam's
items under the same linkIds) names that form's mappings in ``extends`` and lists only
its own items: the shared linkIds then become exactly the same Observations at every
visit, from one home, so an EHR can trend them by code (``inherit``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from ..errors import KnowledgeError
from . import terminology as t
from .questionnaire import Form, Item

SIDES = ("left", "right")
VALUE_TYPES = ("boolean", "integer", "Quantity", "CodeableConcept")
CATEGORIES = ("exam", "survey")
#: The value types each Questionnaire item type may become.
COMPATIBLE = {"boolean": {"boolean"}, "integer": {"integer", "Quantity"},
              "decimal": {"Quantity"}, "quantity": {"Quantity"},
              "choice": {"CodeableConcept"}}
#: SNOMED laterality qualifiers (clinical.md §6.2), for the laterality extension.
LATERALITY = {
    "left": {"system": t.SNOMED, "code": "7771000", "display": "Left (qualifier value)"},
    "right": {"system": t.SNOMED, "code": "24028007", "display": "Right (qualifier value)"},
}


@dataclass(frozen=True)
class ObservationMapping:
    """The Observation one linkId becomes (one per answer for repeating items)."""

    link_id: str
    codes: tuple[Mapping[str, str], ...]
    category: str
    value: str
    unit: Mapping[str, str] | None
    body_site: Mapping[str, Any] | None
    laterality: str | None
    interpretation: Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class ObservationMappings:
    """All mappings of one Questionnaire version, plus the deliberate exclusions."""

    version: str
    questionnaire: str
    by_link_id: Mapping[str, ObservationMapping]
    not_extracted: Mapping[str, str]
    #: The Questionnaire id whose mappings the shared linkIds take (None: all here).
    extends: str | None = None


class CodingSchema(Schema):
    class Meta:
        unknown = RAISE

    system = fields.String(required=True, validate=validate.Length(min=1))
    code = fields.String(required=True, validate=validate.Length(min=1))
    display = fields.String(required=True, validate=validate.Length(min=1))


class _BodySite(Schema):
    class Meta:
        unknown = RAISE

    coding = fields.List(fields.Nested(CodingSchema), validate=validate.Length(min=1))
    text = fields.String(required=True, validate=validate.Length(min=1))


class _Mapping(Schema):
    class Meta:
        unknown = RAISE

    linkId = fields.String(required=True)
    code = fields.List(fields.Nested(CodingSchema), required=True, validate=validate.Length(min=1))
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    value = fields.String(required=True, validate=validate.OneOf(VALUE_TYPES))
    unit = fields.Nested(CodingSchema)
    bodySite = fields.Nested(_BodySite)
    laterality = fields.String(validate=validate.OneOf(SIDES))
    interpretation = fields.Dict(keys=fields.String(), values=fields.Nested(CodingSchema))


class _Exclusion(Schema):
    class Meta:
        unknown = RAISE

    linkId = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=10))


class _MappingFile(Schema):
    class Meta:
        unknown = RAISE

    version = fields.String(required=True)
    questionnaire = fields.String(required=True)
    #: The id of the Questionnaire whose mappings this file's form shares (``inherit``).
    extends = fields.String(validate=validate.Length(min=1))
    not_extracted = fields.List(fields.Nested(_Exclusion), required=True)
    observations = fields.List(fields.Nested(_Mapping), required=True)


def parse(data: Any, *, source: str) -> ObservationMappings:
    """Check a mapping file's shape and read it into records."""
    try:
        loaded = _MappingFile().load(data)
    except ValidationError as exc:
        path, problem = first_error(exc.messages)
        raise KnowledgeError(source, path, problem) from exc
    by_link_id: dict[str, ObservationMapping] = {}
    for n, m in enumerate(loaded["observations"]):
        if m["linkId"] in by_link_id:
            raise KnowledgeError(source, f"observations[{n}].linkId", f"{m['linkId']} mapped twice")
        by_link_id[m["linkId"]] = ObservationMapping(
            link_id=m["linkId"], codes=tuple(m["code"]), category=m["category"],
            value=m["value"], unit=m.get("unit"), body_site=m.get("bodySite"),
            laterality=m.get("laterality"),
            interpretation=MappingProxyType(m.get("interpretation") or {}))
    return ObservationMappings(
        version=loaded["version"], questionnaire=loaded["questionnaire"],
        by_link_id=MappingProxyType(by_link_id),
        not_extracted=MappingProxyType({e["linkId"]: e["reason"]
                                        for e in loaded["not_extracted"]}),
        extends=loaded.get("extends"))


def inherit(own: ObservationMappings, base: ObservationMappings, form: Form, *,
            source: str) -> ObservationMappings:
    """``own`` completed with ``base``'s mapping (or exclusion) of every answerable
    linkId of ``form`` that ``own`` does not list itself. Re-listing a shared linkId is
    refused: a copy could drift from the original, and then one finding would carry two
    codes across visits."""
    shared = [i.link_id for i in form.answerable
              if i.link_id in base.by_link_id or i.link_id in base.not_extracted]
    for link_id in shared:
        if link_id in own.by_link_id or link_id in own.not_extracted:
            raise KnowledgeError(source, link_id, f"already mapped by {own.extends}: "
                                                  f"listed once, in that file")
    by_link_id = {**{k: base.by_link_id[k] for k in shared if k in base.by_link_id},
                  **own.by_link_id}
    not_extracted = {**{k: base.not_extracted[k] for k in shared if k in base.not_extracted},
                     **own.not_extracted}
    return replace(own, by_link_id=MappingProxyType(by_link_id),
                   not_extracted=MappingProxyType(not_extracted))


def check(mappings: ObservationMappings, form: Form, *, source: str) -> None:
    """Refuse mappings that do not fit the Questionnaire they claim to map."""
    if mappings.questionnaire != form.canonical:
        raise KnowledgeError(source, "questionnaire",
                             f"maps {mappings.questionnaire}, loaded {form.canonical}")
    for link_id in list(mappings.by_link_id) + list(mappings.not_extracted):
        item = form.item(link_id)
        if item is None or not item.answerable:
            raise KnowledgeError(source, link_id, "not an answerable linkId of the Questionnaire")
    for item in form.answerable:
        mapped = item.link_id in mappings.by_link_id
        excluded = item.link_id in mappings.not_extracted
        if mapped == excluded:
            raise KnowledgeError(source, item.link_id,
                                 "must be either mapped or listed in not_extracted (exactly one)")
        if mapped:
            _check_one(mappings.by_link_id[item.link_id], item, form, source)
        elif _extract_flag(item, form):
            raise KnowledgeError(source, item.link_id,
                                 "not extracted, yet the Questionnaire marks it observationExtract")


def _check_one(m: ObservationMapping, item: Item, form: Form, source: str) -> None:
    where = m.link_id
    if m.value not in COMPATIBLE.get(item.type, set()):
        raise KnowledgeError(source, where, f"value {m.value} does not fit item type {item.type}")
    if [dict(c) for c in m.codes] != [dict(c) for c in item.codes]:
        raise KnowledgeError(source, where, "code differs from the Questionnaire's item.code")
    if not _extract_flag(item, form):
        raise KnowledgeError(source, where, "the Questionnaire item lacks observationExtract")
    category = _extract_category(item, form)
    if category != m.category:
        raise KnowledgeError(source, where, f"category {m.category} but the Questionnaire "
                                            f"says {category}")
    if item.type == "integer" and (m.value == "Quantity") != (item.unit is not None):
        raise KnowledgeError(source, where, "an integer becomes a Quantity exactly when the "
                                            "item has a questionnaire-unit")
    if m.unit is not None and (item.unit is None or m.unit["code"] != item.unit.get("code")
                               or m.unit["system"] != t.UCUM):
        raise KnowledgeError(source, where, "unit must be the item's UCUM questionnaire-unit")
    if m.laterality is not None and f".{m.laterality}" not in f".{where}.":
        raise KnowledgeError(source, where, f"laterality {m.laterality} does not match the linkId")
    if m.laterality is not None and m.body_site is None:
        raise KnowledgeError(source, where, "laterality needs a bodySite to qualify")
    for code in m.interpretation:
        if item.option(code) is None:
            raise KnowledgeError(source, f"{where}.interpretation",
                                 f"{code!r} is not an answer option")


def _extract_flag(item: Item, form: Form) -> bool:
    for node in (item, *form.ancestors(item.link_id)):
        for ext in _raw(node, form).get("extension") or []:
            if ext.get("url") == t.EXT_OBSERVATION_EXTRACT:
                return bool(ext.get("valueBoolean"))
    return bool(any(e.get("url") == t.EXT_OBSERVATION_EXTRACT and e.get("valueBoolean")
                    for e in form.resource.get("extension") or []))


def _extract_category(item: Item, form: Form) -> str | None:
    for node in (item, *form.ancestors(item.link_id)):
        for ext in _raw(node, form).get("extension") or []:
            if ext.get("url") == t.EXT_EXTRACT_CATEGORY:
                return ext["valueCodeableConcept"]["coding"][0]["code"]
    return None


def _raw(item: Item, form: Form) -> Mapping[str, Any]:
    """The item's JSON in the Questionnaire, for extensions the Form does not digest."""
    nodes = form.resource.get("item") or []
    chain = [*reversed([a.link_id for a in form.ancestors(item.link_id)]), item.link_id]
    node: Mapping[str, Any] = {}
    for link_id in chain:
        node = next(n for n in nodes if n.get("linkId") == link_id)
        nodes = node.get("item") or []
    return node


def first_error(messages: Any, prefix: str = "") -> tuple[str, str]:
    """Flatten marshmallow's nested messages to the first (path, message)."""
    if isinstance(messages, dict):
        key, value = next(iter(messages.items()))
        key = f"[{key}]" if isinstance(key, int) else (f".{key}" if prefix else str(key))
        return first_error(value, prefix + key)
    if isinstance(messages, list) and messages and not isinstance(messages[0], str):
        return first_error(messages[0], prefix)
    return prefix, " ".join(messages) if isinstance(messages, list) else str(messages)
