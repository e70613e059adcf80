"""The patient handout's content (``mappings/decision/handouts.json``), checked at start-up.

The handout is versioned with the decision rules: its ``version`` must equal theirs, it
has exactly one entry per condition of the differential, and every citation it names is
one of theirs. Exercise drawings are plain SVG files that must exist where the document
templates look for them. Templates only print these records; the words live in data so
clinicians can review them (and the tests check their reading grade).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from ..core.mapping import first_error
from ..datafiles import read_json
from ..errors import KnowledgeError
from .catalogue import URGENCIES, DecisionKnowledge

#: Words that state a diagnosis as certain; ``what`` must hedge ("Your exam suggests...").
_CERTAIN = re.compile(r"\byou(?:'ve| have)\b", re.IGNORECASE)
_DRAWING = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*\.svg$")
MAX_EXERCISES = 3


# --- records -------------------------------------------------------------------------

@dataclass(frozen=True)
class Exercise:
    name: str
    steps: tuple[str, ...]
    dose: str
    drawing: str | None  # a file name in the drawings folder, or None


@dataclass(frozen=True)
class ConditionHandout:
    condition: str  # the condition id of the differential
    title: str  # lay name
    what: str  # what it probably is, never stated as certain
    do: tuple[str, ...]
    avoid: tuple[str, ...]
    exercises: tuple[Exercise, ...]
    come_back: tuple[str, ...]
    spine_or_nerve: bool  # True: the emergency box must print on this handout
    citations: tuple[str, ...]
    rationale: str  # for reviewers, not printed

    def text(self) -> str:
        """Everything the patient reads, as one passage (for reading-grade checks)."""
        parts = [self.title, self.what, *self.do, *self.avoid]
        for exercise in self.exercises:
            parts += [exercise.name, *exercise.steps, exercise.dose]
        return _passage([*parts, *self.come_back])


@dataclass(frozen=True)
class EmergencyBox:
    title: str
    intro: str
    signs: tuple[str, ...]
    why: str
    citations: tuple[str, ...]

    def text(self) -> str:
        return _passage([self.title, self.intro, *self.signs, self.why])


@dataclass(frozen=True)
class UrgencyHandout:
    """What leads a handout whose assessment is ``emergency`` or ``urgent``: it replaces
    the condition's advice, exercises and follow-up (nothing that could delay care)."""

    urgency: str
    lead: str  # the one instruction, first on the page
    signs_title: str  # over the warning signs ("go now")
    arranged_title: str | None  # over what is being arranged (urgent only)
    citations: tuple[str, ...]


@dataclass(frozen=True)
class RedFlagHandout:
    """What the patient reads about one raised red flag."""

    red_flag: str
    why: str  # one sentence
    arranged: tuple[str, ...]  # what is being arranged, in plain words
    go_now: tuple[str, ...]  # warning signs that mean "go to A&E now"
    emergency_signs: bool  # also list the emergency box's signs
    until_seen: tuple[str, ...]  # what to do until then (never exercise)
    citations: tuple[str, ...]


@dataclass(frozen=True)
class Handouts:
    version: str
    emergency: EmergencyBox
    general_note: str  # "a suggestion from your exam; your clinician decides with you"
    general_come_back: tuple[str, ...]  # when to come back, for every handout
    general_citations: tuple[str, ...]
    conditions: Mapping[str, ConditionHandout]  # in the differential's order
    urgency: Mapping[str, UrgencyHandout]  # emergency, urgent
    red_flags: Mapping[str, RedFlagHandout]  # in red-flags.json's order

    def for_condition(self, condition_id: str) -> ConditionHandout:
        try:
            return self.conditions[condition_id]
        except KeyError:
            raise KeyError(f"no handout for condition {condition_id!r}") from None


def _passage(parts: list[str]) -> str:
    """Join headings and list items as sentences, so each counts as one."""
    return " ".join(p if p.rstrip().endswith((".", "!", "?", ":")) else f"{p}." for p in parts)


# --- schema --------------------------------------------------------------------------

def _text(min_length: int = 2) -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=min_length))


def _lines(min_items: int = 1) -> fields.List:
    return fields.List(fields.String(validate=validate.Length(min=2)), required=True,
                       validate=validate.Length(min=min_items))


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class _Emergency(_Strict):
    title = _text()
    intro = _text()
    signs = _lines()
    why = _text(10)
    citations = _lines()


class _General(_Strict):
    note = _text(10)
    come_back = _lines()
    citations = _lines()


class _Exercise(_Strict):
    name = _text()
    steps = _lines()
    dose = _text()
    drawing = fields.String(validate=validate.Regexp(
        _DRAWING, error="must be a lower-kebab .svg file name (no folders)"))


class _Condition(_Strict):
    title = _text()
    what = _text(20)
    do = _lines()
    avoid = _lines()
    # Empty only where exercise must wait (a suspected avulsion waits for the surgeon).
    exercises = fields.List(fields.Nested(_Exercise), required=True,
                            validate=validate.Length(max=MAX_EXERCISES))
    come_back = _lines()
    spine_or_nerve = fields.Boolean(required=True)
    citations = _lines()
    rationale = _text(10)


class _Urgency(_Strict):
    lead = _text(10)
    signs_title = _text()
    arranged_title = fields.String(validate=validate.Length(min=2))
    citations = _lines()


class _RedFlag(_Strict):
    why = _text(10)
    arranged = _lines()
    go_now = fields.List(fields.String(validate=validate.Length(min=2)), load_default=list)
    emergency_signs = fields.Boolean(required=True)
    until_seen = fields.List(fields.String(validate=validate.Length(min=2)), load_default=list)
    citations = _lines()


class _File(_Strict):
    version = fields.String(required=True, validate=validate.Regexp(r"^\d+\.\d+\.\d+$"))
    about = _text(20)
    emergency = fields.Nested(_Emergency, required=True)
    general = fields.Nested(_General, required=True)
    urgency = fields.Dict(keys=fields.String(validate=validate.OneOf(URGENCIES)),
                          values=fields.Nested(_Urgency), required=True)
    red_flags = fields.Dict(keys=fields.String(), values=fields.Raw(), required=True)
    # Checked entry by entry below, so an error names the condition id.
    conditions = fields.Dict(keys=fields.String(), values=fields.Raw(), required=True)


# --- loading -------------------------------------------------------------------------

def load(path: str | Path, decision: DecisionKnowledge, drawings_dir: str | Path) -> Handouts:
    """Read and check the handout content against the loaded decision rules."""
    path, drawings_dir = Path(path), Path(drawings_dir)
    source = str(path)
    data = _validated(_File, read_json(path), source, "")
    if data["version"] != decision.version:
        raise KnowledgeError(source, "version",
                             f"is {data['version']}, the decision rules are {decision.version}: "
                             f"the handout is released with them and must carry their version")

    def cites(ids: list[str], where: str) -> tuple[str, ...]:
        for n, id_ in enumerate(ids):
            if id_ not in decision.citations:
                raise KnowledgeError(source, f"{where}[{n}]", f"unknown citation {id_!r}")
        return tuple(ids)

    e = data["emergency"]
    emergency = EmergencyBox(e["title"], e["intro"], tuple(e["signs"]), e["why"],
                             cites(e["citations"], "emergency.citations"))
    general = data["general"]
    conditions: dict[str, ConditionHandout] = {}
    for id_, where, c in _one_each(
            data["conditions"], [c.id for c in decision.conditions], _Condition, source,
            "conditions", unknown="not a condition of the differential",
            missing="missing: every condition of the differential needs a handout"):
        if _CERTAIN.search(c["what"]):
            raise KnowledgeError(source, f"{where}.what",
                                 "states the condition as certain ('you have'); say what the "
                                 "exam suggests")
        exercises = []
        for n, x in enumerate(c["exercises"]):
            drawing = x.get("drawing")
            if drawing is not None and not (drawings_dir / drawing).is_file():
                raise KnowledgeError(source, f"{where}.exercises[{n}].drawing",
                                     f"no drawing {drawing!r} in {drawings_dir}")
            exercises.append(Exercise(x["name"], tuple(x["steps"]), x["dose"], drawing))
        conditions[id_] = ConditionHandout(
            id_, c["title"], c["what"], tuple(c["do"]), tuple(c["avoid"]), tuple(exercises),
            tuple(c["come_back"]), c["spine_or_nerve"], cites(c["citations"], f"{where}.citations"),
            c["rationale"])
    urgency = {}
    for level in URGENCIES:
        if level not in data["urgency"]:
            raise KnowledgeError(source, f"urgency.{level}", "missing: every red-flag urgency "
                                                            "needs its handout lead")
        u = data["urgency"][level]
        if level == "urgent" and not u.get("arranged_title"):
            raise KnowledgeError(source, "urgency.urgent.arranged_title",
                                 "missing: an urgent handout says what is being arranged")
        urgency[level] = UrgencyHandout(level, u["lead"], u["signs_title"],
                                        u.get("arranged_title"),
                                        cites(u["citations"], f"urgency.{level}.citations"))
    red_flags = {}
    for id_, where, r in _one_each(
            data["red_flags"], [f.id for f in decision.red_flags], _RedFlag, source,
            "red_flags", unknown="not a red flag of red-flags.json",
            missing="missing: every red flag needs the words the patient reads when it is "
                    "raised"):
        if not r["go_now"] and not r["emergency_signs"]:
            raise KnowledgeError(source, f"{where}.go_now",
                                 "give the warning signs that mean 'go now' (or emergency_signs)")
        red_flags[id_] = RedFlagHandout(id_, r["why"], tuple(r["arranged"]), tuple(r["go_now"]),
                                        r["emergency_signs"], tuple(r["until_seen"]),
                                        cites(r["citations"], f"{where}.citations"))
    return Handouts(version=data["version"], emergency=emergency,
                    general_note=general["note"], general_come_back=tuple(general["come_back"]),
                    general_citations=cites(general["citations"], "general.citations"),
                    conditions=MappingProxyType(conditions),
                    urgency=MappingProxyType(urgency), red_flags=MappingProxyType(red_flags))


def _one_each(entries: Mapping[str, Any], wanted: list[str], schema: type[Schema], source: str,
              key: str, *, unknown: str, missing: str) -> Any:
    """Exactly one entry per id of ``wanted`` (nothing else), each checked against
    ``schema``: yields (id, where, entry) in ``wanted``'s order."""
    for id_ in entries:
        if id_ not in wanted:
            raise KnowledgeError(source, f"{key}.{id_}", unknown)
    for id_ in wanted:
        where = f"{key}.{id_}"
        if id_ not in entries:
            raise KnowledgeError(source, where, missing)
        yield id_, where, _validated(schema, entries[id_], source, where)


def _validated(schema: type[Schema], data: Any, source: str, where: str) -> dict[str, Any]:
    try:
        return schema().load(data)
    except ValidationError as exc:
        place, problem = first_error(exc.messages, where)
        raise KnowledgeError(source, place, problem) from exc
