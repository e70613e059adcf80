"""How two visits of an episode are compared, as data (``mappings/decision/course.json``),
checked at start-up.

Why data: what counts as a real change (a 2-point fall in pain, 10 degrees more on the
straight leg raise) is a clinical judgement with a source, or marked UNVERIFIED where
there is none; it belongs beside the other rules, not in code. The numeric comparisons
share the shape (and the checks) of the outcome measures' interpretation
(``core.interpretation``): label, direction, minimal important change and its source.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..core.interpretation import Meaning
from ..core.interpretation import parse as parse_changes
from ..errors import KnowledgeError


@dataclass(frozen=True)
class Ordered:
    label: str
    best_first: tuple[frozenset[str], ...]
    words: Mapping[str, str]
    rating: bool  # a rating of change itself (asked only at the later visit)
    plain: str


@dataclass(frozen=True)
class CourseKnowledge:
    """``mappings/decision/course.json``: how each finding is compared."""

    changes: Mapping[str, Meaning]
    units: Mapping[str, str]
    ordered: Mapping[str, Ordered]
    course_from: tuple[str, ...]
    plain: Mapping[str, str]  # pattern -> the finding in the patient's words


def parse(data: Any, *, source: str) -> CourseKnowledge:
    """Read and check the comparison rules; a change without its source stops start-up."""
    if not isinstance(data, Mapping):
        raise KnowledgeError(source, "", "expected a JSON object")
    raw = data.get("changes")
    if not isinstance(raw, Mapping) or not raw:
        raise KnowledgeError(source, "changes", "expected an object of linkIds")
    changes = parse_changes({"scores": raw}, source=source)
    for link_id, meaning in changes.items():
        if meaning.mcid is None:
            raise KnowledgeError(source, f"changes.{link_id}.mcid", "a comparison needs one")
    units = {k: str(v.get("unit", "")) for k, v in raw.items()}
    ordered = {}
    for link_id, entry in (data.get("ordered") or {}).items():
        groups = entry.get("best_first") if isinstance(entry, Mapping) else None
        if not isinstance(groups, list) or len(groups) < 2 or not all(
                isinstance(g, list) and g for g in groups):
            raise KnowledgeError(source, f"ordered.{link_id}.best_first",
                                 "a list of at least two lists of answer codes")
        words = entry.get("words") or {}
        codes = {c for g in groups for c in g}
        if set(words) != codes:
            raise KnowledgeError(source, f"ordered.{link_id}.words",
                                 "needs words for every ranked code and no other")
        ordered[link_id] = Ordered(str(entry.get("label", link_id)),
                                   tuple(frozenset(g) for g in groups),
                                   MappingProxyType(dict(words)), entry.get("rating") is True,
                                   str(entry.get("plain") or ""))
    course_from = tuple(data.get("course_from") or ())
    unknown = [c for c in course_from if c not in changes and c not in ordered]
    if not course_from or unknown:
        raise KnowledgeError(source, "course_from", f"must name compared findings; "
                                                    f"unknown: {unknown}")
    plain = {k: str(v["plain"]) for k, v in raw.items() if v.get("plain")}
    plain.update({k: o.plain for k, o in ordered.items() if o.plain})
    return CourseKnowledge(MappingProxyType(dict(changes)), MappingProxyType(units),
                           MappingProxyType(ordered), course_from, MappingProxyType(plain))
