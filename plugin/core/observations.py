"""SDC observation-based extraction: one Observation per answer, coded from the mappings.

Each Observation carries what SDC 4.0.0 asks of extracted Observations (status, category,
code, subject, encounter, effective/issued from ``authored``, performer from ``author``,
derivedFrom the response) plus what the mappings add: body site with a machine-readable
laterality (the Extensions Pack ``observation-structureLaterality`` extension, made for
R4's ``Observation.bodySite``) and interpretation for tests recorded as positive or
negative. Its identifier ``<exam id>/<linkId>[/<answer code>]`` makes re-delivery safe.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import terminology as t
from .datetimes import is_instant
from .mapping import LATERALITY, ObservationMapping, ObservationMappings
from .questionnaire import Quantity
from .responses import Exam, quantity

_CATEGORY_DISPLAY = {"exam": "Exam", "survey": "Survey"}


def extract(exam: Exam, mappings: ObservationMappings,
            response_reference: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Observations for every mapped answer, in form order."""
    result = []
    for link_id, values in exam.answers.items():
        m = mappings.by_link_id.get(link_id)
        if m is None:
            continue  # deliberately not extracted (listed in the mapping file)
        item = exam.form.index[link_id]
        for value in values:
            suffix = f"/{value}" if item.repeats else ""
            result.append(_observation(exam, m, item, value, f"{exam.exam_id}/{link_id}{suffix}",
                                       response_reference))
    return result


def _observation(exam: Exam, m: ObservationMapping, item: Any, value: Any, identifier: str,
                 response_reference: Mapping[str, Any]) -> dict[str, Any]:
    ctx = exam.context
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [{"system": t.ID_OBSERVATION, "value": identifier}],
    }
    if ctx.based_on:
        obs["basedOn"] = list(ctx.based_on)
    if ctx.part_of:
        obs["partOf"] = list(ctx.part_of)
    obs["status"] = "final"
    obs["category"] = [{"coding": [{"system": t.OBSERVATION_CATEGORY, "code": m.category,
                                    "display": _CATEGORY_DISPLAY[m.category]}]}]
    obs["code"] = {"coding": [dict(c) for c in m.codes], "text": item.text}
    if ctx.subject:
        obs["subject"] = dict(ctx.subject)
    if ctx.encounter:
        obs["encounter"] = dict(ctx.encounter)
    if ctx.authored:
        obs["effectiveDateTime"] = ctx.authored
        if is_instant(ctx.authored):
            obs["issued"] = ctx.authored
    if ctx.author:
        obs["performer"] = [dict(ctx.author)]
    obs.update(_value(m, item, value))
    if value in m.interpretation:
        obs["interpretation"] = [{"coding": [dict(m.interpretation[value])]}]
    if m.body_site is not None:
        obs["bodySite"] = _body_site(m)
    obs["derivedFrom"] = [dict(response_reference)]
    return obs


def _value(m: ObservationMapping, item: Any, value: Any) -> dict[str, Any]:
    if m.value == "CodeableConcept":
        option = item.option(value)
        return {"valueCodeableConcept": {"coding": [dict(option.coding)], "text": option.display}}
    if m.value == "Quantity":
        if isinstance(value, Quantity):
            return {"valueQuantity": quantity(value)}
        unit = m.unit or {}
        return {"valueQuantity": quantity(Quantity(value, unit["code"]), unit.get("display"))}
    return {"valueBoolean" if m.value == "boolean" else "valueInteger": value}


def _body_site(m: ObservationMapping) -> dict[str, Any]:
    site: dict[str, Any] = {}
    if m.laterality:
        coding = LATERALITY[m.laterality]
        site["extension"] = [{"url": t.EXT_STRUCTURE_LATERALITY, "valueCodeableConcept": {
            "coding": [dict(coding)], "text": m.laterality.capitalize()}}]
    assert m.body_site is not None
    if m.body_site.get("coding"):
        site["coding"] = [dict(c) for c in m.body_site["coding"]]
    site["text"] = m.body_site["text"]
    return site

