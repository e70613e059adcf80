"""The closed rule vocabulary: predicates over an exam's answers, in three-valued logic.

Rules in ``mappings/decision/`` are JSON, never code: a predicate is an answer test
(``{"answer": "slr.{side}.response", "in": [...]}``), an outcome-measure band test
(``{"score": "sbst-risk", "band": "LA9193-9"}``, LOINC's "High": the visit's score in that band of
``mappings/outcomes/interpretation.json``), a reference to a finding, a
suggested condition or a raised red flag, or ``all``/``any``/``not``/``count``/
``holds``-``unless`` over predicates; a referral rule may also name another suggested
service (``{"referral": "spine-surgeon"}``). Nothing is evaluated with ``eval``.

Every predicate is *true*, *false* or *unknown* (``None``). A question nobody asked, or
answered "not done", is unknown, and unknown never turns into false: "missing tests
lower confidence; they never count as negative". Each result also carries the answers
it rests on, so a finding can point at the Observations behind it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Union

from ..errors import KnowledgeError
from ..core.questionnaire import SECONDS, Form, Item, Quantity, seconds

Truth = Union[bool, None]
#: An answer a result rests on: (linkId, value); value is the code for repeating items.
Source = tuple[str, Any]
SIDES = ("left", "right")
OTHER = {"left": "right", "right": "left"}
#: Comparisons on integer/decimal/quantity answers.
NUMERIC = {"at_least": lambda a, b: a >= b, "at_most": lambda a, b: a <= b,
           "below": lambda a, b: a < b, "above": lambda a, b: a > b}
CHOICE = ("is", "in", "includes", "includes_any", "excludes")
ANSWER_OPS = (*CHOICE, "equals", "answered", *NUMERIC)


@dataclass(frozen=True)
class Result:
    """A predicate's truth and the answers it rests on."""

    truth: Truth
    sources: frozenset[Source] = frozenset()


UNKNOWN = Result(None)


class Env:
    """What a predicate can look at; the engine fills it in stages (answers, then
    findings, then conditions and red flags)."""

    def __init__(self, answers: Mapping[str, tuple[Any, ...]], not_done: frozenset[str],
                 finding: Callable[[str, str | None, str | None], Result] | None = None,
                 condition: Callable[[str], Truth] | None = None,
                 red_flag: Callable[[str], Result] | None = None,
                 referral: Callable[[str], Result] | None = None,
                 course: str | None = None,
                 scores: Mapping[str, str] | None = None) -> None:
        self.answers = answers
        self.course = course  # the episode's response to treatment (decision/episode.py)
        #: the visit's outcome-measure bands: score linkId -> band code
        self.scores = scores or {}
        self.not_done = not_done
        self.finding = finding
        self.condition = condition
        self.red_flag = red_flag
        self.referral = referral

    def values(self, link_id: str) -> tuple[Any, ...]:
        """The answers to ``link_id``; empty when unanswered or answered 'not done'."""
        return tuple(v for v in self.answers.get(link_id, ()) if v not in self.not_done)


class Predicate:
    def evaluate(self, env: Env, side: str | None) -> Result:
        raise NotImplementedError

    def refs(self) -> set[tuple[str, str]]:
        """(kind, id) of every finding/condition/red flag referred to."""
        return set()


@dataclass(frozen=True)
class Answer(Predicate):
    link_id: str  # may hold {side} / {other}
    op: str
    operand: Any

    def evaluate(self, env: Env, side: str | None) -> Result:
        link_id = self.link_id
        if side is not None:
            link_id = link_id.replace("{side}", side).replace("{other}", OTHER[side])
        values = env.values(link_id)
        if self.op == "answered":
            return Result(bool(values) == self.operand,
                          frozenset((link_id, None) for _ in values[:1]))
        if not values:
            return UNKNOWN
        if self.op in ("includes", "includes_any", "excludes"):
            hits = [v for v in values if v in self.operand]
            truth = bool(hits) if self.op != "excludes" else not hits
            shown = hits if hits else values
            return Result(truth, frozenset((link_id, v) for v in shown))
        value = values[0]
        source = frozenset({(link_id, None)})
        if self.op == "is":
            return Result(value == self.operand, source)
        if self.op == "in":
            return Result(value in self.operand, source)
        if self.op == "equals":
            return Result(value is self.operand, source)
        number = seconds(value) if isinstance(value, Quantity) else value
        return Result(NUMERIC[self.op](number, self.operand), source)


@dataclass(frozen=True)
class Score(Predicate):
    """The visit's outcome-measure score is in ``band``: unknown when the measure was
    not completed at this visit (not done is never negative)."""

    link_id: str
    band: str

    def evaluate(self, env: Env, side: str | None) -> Result:
        value = env.scores.get(self.link_id)
        return UNKNOWN if value is None else Result(value == self.band)



def score_tests(predicate: Predicate) -> list[Score]:
    """Every outcome-measure band test inside ``predicate`` (checked at start-up
    against the loaded interpretations: ``knowledge``)."""
    if isinstance(predicate, Score):
        return [predicate]
    found: list[Score] = []
    for value in vars(predicate).values():
        for child in (value if isinstance(value, tuple) else (value,)):
            if isinstance(child, Predicate):
                found += score_tests(child)
    return found


@dataclass(frozen=True)
class All(Predicate):
    children: tuple[Predicate, ...]

    def evaluate(self, env: Env, side: str | None) -> Result:
        results = [c.evaluate(env, side) for c in self.children]
        false = [r for r in results if r.truth is False]
        if false:
            return Result(False, _union(false))
        if any(r.truth is None for r in results):
            return UNKNOWN
        return Result(True, _union(results))

    def refs(self) -> set[tuple[str, str]]:
        return set().union(*(c.refs() for c in self.children))


@dataclass(frozen=True)
class Any_(Predicate):
    children: tuple[Predicate, ...]

    def evaluate(self, env: Env, side: str | None) -> Result:
        results = [c.evaluate(env, side) for c in self.children]
        true = [r for r in results if r.truth is True]
        if true:
            return Result(True, _union(true))
        if any(r.truth is None for r in results):
            return UNKNOWN
        return Result(False, _union(results))

    refs = All.refs


@dataclass(frozen=True)
class Not(Predicate):
    child: Predicate

    def evaluate(self, env: Env, side: str | None) -> Result:
        result = self.child.evaluate(env, side)
        return result if result.truth is None else Result(not result.truth, result.sources)

    def refs(self) -> set[tuple[str, str]]:
        return self.child.refs()


@dataclass(frozen=True)
class Count(Predicate):
    """At least ``n`` of the children are true (false once too few can still be)."""

    children: tuple[Predicate, ...]
    n: int

    def evaluate(self, env: Env, side: str | None) -> Result:
        results = [c.evaluate(env, side) for c in self.children]
        true = [r for r in results if r.truth is True]
        unknown = sum(r.truth is None for r in results)
        if len(true) >= self.n:
            return Result(True, _union(true))
        if len(true) + unknown < self.n:
            return Result(False, _union([r for r in results if r.truth is not None]))
        return UNKNOWN

    refs = All.refs


@dataclass(frozen=True)
class Holds(Predicate):
    """``holds`` unless ``unless`` is known true (an exclusion, e.g. centralisation
    excludes the SIJ cluster); an unassessed exclusion does not cancel the finding."""

    holds: Predicate
    unless: Predicate

    def evaluate(self, env: Env, side: str | None) -> Result:
        excluded = self.unless.evaluate(env, side)
        if excluded.truth is True:
            return Result(False, excluded.sources)
        return self.holds.evaluate(env, side)

    def refs(self) -> set[tuple[str, str]]:
        return self.holds.refs() | self.unless.refs()


@dataclass(frozen=True)
class FindingRef(Predicate):
    id: str
    side: str | None = None  # None: the same side (or the symptomatic sides); "any"

    def evaluate(self, env: Env, side: str | None) -> Result:
        assert env.finding is not None, "findings are not available at this stage"
        return env.finding(self.id, side, self.side)

    def refs(self) -> set[tuple[str, str]]:
        return {("finding", self.id)}


@dataclass(frozen=True)
class ConditionRef(Predicate):
    """True when the condition is suggested (ranked first, or a moderate/high band)."""

    id: str

    def evaluate(self, env: Env, side: str | None) -> Result:
        assert env.condition is not None, "the differential is not available at this stage"
        return Result(env.condition(self.id))

    def refs(self) -> set[tuple[str, str]]:
        return {("condition", self.id)}


@dataclass(frozen=True)
class StageRef(Predicate):
    """What an earlier stage of the engine produced, with the answers behind it: a raised
    red flag (``kind`` ``red_flag``) or a service another referral rule suggests
    (``referral``: such rules run after the others, e.g. the lumbar MRI a spine surgeon
    needs)."""

    kind: str
    id: str

    def evaluate(self, env: Env, side: str | None) -> Result:
        lookup = getattr(env, self.kind)
        assert lookup is not None, f"{self.kind} is not available at this stage"
        return lookup(self.id)

    def refs(self) -> set[tuple[str, str]]:
        return {(self.kind, self.id)}


@dataclass(frozen=True)
class CourseRef(Predicate):
    """The episode's response to treatment is one of ``verdicts`` (improving,
    not-improving, worse; ``decision/episode.py`` compares the first visit with the
    current one). Unknown for a single visit: no change was seen, none is assumed."""

    verdicts: frozenset[str]

    def evaluate(self, env: Env, side: str | None) -> Result:
        if env.course is None:
            return UNKNOWN
        return Result(env.course in self.verdicts)

    def refs(self) -> set[tuple[str, str]]:
        return {("course", v) for v in sorted(self.verdicts)}


#: What ``{"course": [...]}`` may name.
COURSES = ("improving", "not-improving", "worse")


def _union(results: Sequence[Result]) -> frozenset[Source]:
    return frozenset().union(*(r.sources for r in results))


# --- compiling the JSON ------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    """What a predicate may refer to where it stands, for the start-up checks."""

    form: Form
    thresholds: Mapping[str, Any]
    source: str
    sided: bool = False
    allow: frozenset[str] = frozenset({"finding"})


def compile_(data: Any, scope: Scope, where: str) -> Predicate:
    """A Predicate from its JSON, or a KnowledgeError naming the file and the path."""
    if not isinstance(data, Mapping):
        raise KnowledgeError(scope.source, where, "a predicate must be a JSON object")
    keys = set(data)
    if "answer" in data:
        return _answer(data, scope, where)
    if "score" in data:
        if keys != {"score", "band"} or not all(isinstance(data[k], str) and data[k]
                                                 for k in keys):
            raise KnowledgeError(scope.source, where, "a score test is "
                                 "{\"score\": <score linkId>, \"band\": <band code>}")
        return Score(data["score"], data["band"])
    if keys == {"all"} or keys == {"any"}:
        kind = next(iter(keys))
        children = _children(data[kind], scope, f"{where}.{kind}")
        return All(children) if kind == "all" else Any_(children)
    if keys == {"not"}:
        return Not(compile_(data["not"], scope, f"{where}.not"))
    if keys == {"count", "at_least"}:
        children = _children(data["count"], scope, f"{where}.count")
        n = data["at_least"]
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(children):
            raise KnowledgeError(scope.source, f"{where}.at_least",
                                 f"must be a whole number from 1 to {len(children)}")
        return Count(children, n)
    if keys == {"holds", "unless"}:
        return Holds(compile_(data["holds"], scope, f"{where}.holds"),
                     compile_(data["unless"], scope, f"{where}.unless"))
    if "course" in data:
        verdicts = data["course"]
        if keys != {"course"} or not isinstance(verdicts, list) or not verdicts \
                or not set(verdicts) <= set(COURSES):
            raise KnowledgeError(scope.source, f"{where}.course",
                                 f"a non-empty list of {', '.join(COURSES)}")
        return CourseRef(frozenset(verdicts))
    for kind, cls in (("finding", FindingRef), ("condition", ConditionRef),
                      ("red_flag", StageRef), ("referral", StageRef)):
        if kind in data:
            if kind not in scope.allow:
                raise KnowledgeError(scope.source, where,
                                     f"'{kind}' cannot be referred to here")
            if not isinstance(data[kind], str):
                raise KnowledgeError(scope.source, f"{where}.{kind}", "must be an id")
            extra = keys - {kind, "side"} if kind == "finding" else keys - {kind}
            if extra:
                raise KnowledgeError(scope.source, where, f"unknown keys {sorted(extra)}")
            if kind == "finding":
                side = data.get("side")
                if side not in (None, "any", *SIDES):
                    raise KnowledgeError(scope.source, f"{where}.side",
                                         "must be 'any', 'left' or 'right'")
                return FindingRef(data[kind], side)
            return cls(kind, data[kind]) if cls is StageRef else cls(data[kind])
    raise KnowledgeError(scope.source, where, f"not a predicate: keys {sorted(keys)}; use "
                         "answer, score+band, all, any, not, count+at_least, holds+unless, "
                         "finding, condition, red_flag, referral or course")


def _children(data: Any, scope: Scope, where: str) -> tuple[Predicate, ...]:
    if not isinstance(data, list) or not data:
        raise KnowledgeError(scope.source, where, "must be a non-empty list of predicates")
    return tuple(compile_(c, scope, f"{where}[{n}]") for n, c in enumerate(data))


def _answer(data: Mapping[str, Any], scope: Scope, where: str) -> Answer:
    link_id = data["answer"]
    ops = [k for k in data if k != "answer"]
    if len(ops) != 1 or ops[0] not in ANSWER_OPS:
        raise KnowledgeError(scope.source, where, f"an answer test needs exactly one of "
                             f"{', '.join(ANSWER_OPS)}")
    op = ops[0]
    if not isinstance(link_id, str):
        raise KnowledgeError(scope.source, f"{where}.answer", "must be a linkId")
    if ("{side}" in link_id or "{other}" in link_id) and not scope.sided:
        raise KnowledgeError(scope.source, f"{where}.answer",
                             "{side}/{other} only in a sided finding")
    items = [scope.form.index.get(link_id.replace("{side}", s).replace("{other}", OTHER[s]))
             for s in SIDES]
    item = items[0]
    if item is None or items[1] is None or item.type == "group":
        raise KnowledgeError(scope.source, f"{where}.answer",
                             f"{link_id!r} is not a question of {scope.form.id}")
    operand = _operand(item, op, data[op], scope, f"{where}.{op}")
    return Answer(link_id, op, operand)


def _operand(item: Item, op: str, value: Any, scope: Scope, where: str) -> Any:
    def fail(problem: str) -> KnowledgeError:
        return KnowledgeError(scope.source, where, f"{problem} ({item.link_id} is "
                                                   f"{item.type}{', repeats' if item.repeats else ''})")

    if op == "answered":
        if not isinstance(value, bool):
            raise fail("must be true or false")
        return value
    if op in CHOICE:
        if item.type not in ("choice", "open-choice"):
            raise fail(f"'{op}' needs a choice question")
        if (op in ("includes", "includes_any", "excludes")) != item.repeats:
            raise fail("use includes/includes_any/excludes for repeating questions, "
                       "is/in otherwise")
        codes = [value] if op in ("is", "includes") else value
        if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
            raise fail("must be an answer code" + ("" if op in ("is", "includes") else " list"))
        unknown = [c for c in codes if item.option(c) is None]
        if unknown:
            raise fail(f"{', '.join(map(repr, unknown))} is not an answer option")
        return codes[0] if op in ("is", "includes") else frozenset(codes)
    if op == "equals":
        if item.type != "boolean" or not isinstance(value, bool):
            raise fail("'equals' compares a boolean question with true or false")
        return value
    if item.type not in ("integer", "decimal", "quantity"):
        raise fail(f"'{op}' needs a number or quantity question")
    if isinstance(value, Mapping):
        if set(value) - {"value", "threshold", "unit"} or ("value" in value) == ("threshold" in value):
            raise fail("give a number, {value[, unit]} or {threshold[, unit]}")
        number = value.get("value")
        if "threshold" in value:
            if value["threshold"] not in scope.thresholds:
                raise fail(f"unknown threshold {value['threshold']!r}; configure it in "
                           f"DECISION_THRESHOLDS")
            number = scope.thresholds[value["threshold"]]
        unit = value.get("unit")
    else:
        number, unit = value, None
    if isinstance(number, bool) or not isinstance(number, (int, float, Decimal)):
        raise fail("the operand must be a number")
    number = Decimal(str(number))
    if item.type == "quantity":
        if unit not in SECONDS:
            raise fail(f"a quantity comparison needs a time unit ({', '.join(SECONDS)})")
        return seconds(Quantity(number, unit))
    if unit is not None:
        raise fail("only quantity questions take a unit")
    return number
