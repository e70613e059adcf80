"""Return to sport after a hamstring injury: which consensus criteria are met, visit by
visit, and the objective tests' values per side.

Why: the clinician and the patient decide together (van der Horst et al., BJSM 2017);
the product's part is to show exactly which criteria are met and which are not, with
their history across the follow-ups and the sources, never to declare anyone fit. The
criteria are data (``mappings/decision/return-to-sport.json``), checked at start-up.
Pure: visits in (``decision/episode.Visit``), a Readiness out.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from ..core.mapping import first_error
from ..errors import KnowledgeError
from .episode import SIDES, Visit

STATUSES = ("met", "not-met", "not-assessed")
WORDS = {"met": "met", "not-met": "not met", "not-assessed": "not assessed"}
_LINK = validate.Regexp(r"^return-to-sport\.[a-z0-9.{}-]+$", error="must be a return-to-sport linkId")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class _Criterion(_Strict):
    link_id = fields.String(required=True, validate=_LINK)
    text = fields.String(required=True, validate=validate.Length(min=3))
    consensus = fields.String(required=True, validate=validate.Length(min=10))


class _Test(_Strict):
    link_id = fields.String(required=True, validate=_LINK)
    text = fields.String(required=True, validate=validate.Length(min=3))
    unit = fields.String(required=True)
    caveat = fields.String(required=True, validate=validate.Length(min=20))


class _File(_Strict):
    version = fields.String(required=True, validate=validate.Regexp(r"^\d+\.\d+\.\d+$"))
    about = fields.String(required=True, validate=validate.Length(min=20))
    conditions = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    source = fields.String(required=True, validate=validate.Length(min=20))
    shared_decision = fields.String(required=True, validate=validate.Length(min=20))
    criteria = fields.List(fields.Nested(_Criterion), required=True,
                           validate=validate.Length(min=1))
    objective_tests = fields.List(fields.Nested(_Test), required=True)


@dataclass(frozen=True)
class Criterion:
    link_id: str
    text: str
    consensus: str


@dataclass(frozen=True)
class ObjectiveTest:
    link_id: str  # may hold {side}
    text: str
    unit: str
    caveat: str


@dataclass(frozen=True)
class ReturnToSport:
    version: str
    conditions: frozenset[str]
    source: str
    shared_decision: str
    criteria: tuple[Criterion, ...]
    tests: tuple[ObjectiveTest, ...]


@dataclass(frozen=True)
class CriterionState:
    criterion: Criterion
    status: str  # at the latest visit that recorded it; not-assessed when none did
    history: tuple[tuple[Visit, str], ...]

    @property
    def words(self) -> str:
        return WORDS[self.status]


@dataclass(frozen=True)
class TestValues:
    test: ObjectiveTest
    side: str | None
    values: tuple[tuple[Visit, Any], ...]


@dataclass(frozen=True)
class Readiness:
    criteria: tuple[CriterionState, ...]
    tests: tuple[TestValues, ...]
    summary: str
    source: str
    shared_decision: str


def parse(data: Any, *, source: str, conditions: Iterable[str]) -> ReturnToSport:
    """Read and check the file; a condition the engine does not know stops start-up."""
    try:
        loaded = _File().load(data)
    except ValidationError as error:
        where, problem = first_error(error.messages)
        raise KnowledgeError(source, where, problem) from None
    unknown = set(loaded["conditions"]) - set(conditions)
    if unknown:
        raise KnowledgeError(source, "conditions", f"unknown condition(s) {sorted(unknown)}")
    links = [c["link_id"] for c in loaded["criteria"]] + \
        [t["link_id"] for t in loaded["objective_tests"]]
    if len(set(links)) != len(links):
        raise KnowledgeError(source, "criteria", "a linkId is listed twice")
    return ReturnToSport(loaded["version"], frozenset(loaded["conditions"]), loaded["source"],
                         loaded["shared_decision"],
                         tuple(Criterion(**c) for c in loaded["criteria"]),
                         tuple(ObjectiveTest(**t) for t in loaded["objective_tests"]))


def link_ids(rts: ReturnToSport) -> list[str]:
    """Every linkId the criteria and tests read (sides spelled out)."""
    found = [c.link_id for c in rts.criteria]
    for test in rts.tests:
        found += [link for link, _ in _sides(test.link_id)]
    return found


def applies(rts: ReturnToSport, visits: Sequence[Visit],
            impression: Iterable[str] = ()) -> bool:
    """A hamstring injury: a visit's top condition, or the clinician's impression."""
    named = {v.top_condition for v in visits} | set(impression)
    return bool(named & rts.conditions)


def evaluate(rts: ReturnToSport, visits: Sequence[Visit]) -> Readiness | None:
    """Each criterion's state and history, and the tests' values; None when no visit of
    the episode recorded any of them."""
    states = []
    for criterion in rts.criteria:
        history = tuple((v, v.answers[criterion.link_id]) for v in visits
                        if v.answers.get(criterion.link_id) in STATUSES)
        status = history[-1][1] if history else "not-assessed"
        states.append(CriterionState(criterion, status, history))
    tests = []
    for test in rts.tests:
        for link_id, side in _sides(test.link_id):
            values = tuple((v, v.answers[link_id]) for v in visits
                           if v.answers.get(link_id) is not None)
            if values:
                tests.append(TestValues(test, side, values))
    if not any(s.history for s in states) and not tests:
        return None
    return Readiness(tuple(states), tuple(tests), _summary(states), rts.source,
                     rts.shared_decision)


def _summary(states: Sequence[CriterionState]) -> str:
    """"4 of 7 criteria met; not met: ...; not assessed: ..." — never a verdict."""
    met = [s for s in states if s.status == "met"]
    text = f"{len(met)} of {len(states)} criteria met"
    for status in ("not-met", "not-assessed"):
        named = [s.criterion.text.lower() for s in states if s.status == status]
        if named:
            text += f"; {WORDS[status]}: {', '.join(named)}"
    return text + "."


def _sides(pattern: str) -> list[tuple[str, str | None]]:
    if "{side}" not in pattern:
        return [(pattern, None)]
    return [(pattern.replace("{side}", s), s) for s in SIDES]
