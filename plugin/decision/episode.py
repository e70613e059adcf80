"""Visits of one episode compared: the real elapsed time and the response to treatment.

Why: a follow-up asks "is it getting better?", and the timing rules (MRI after 6 weeks of
radicular pain, imaging after 12 weeks of loading) need the time since onset. The
patient's recollection at each visit drifts; the episode knows better: the duration
recorded at its first visit plus the time since that visit (shared/outcomes.md section 5).
Every comparison names the two visits it compared, by date and type, so a suggestion
that rests on it can say "pain 6/10 on 1 March 2026 (initial exam) -> 6/10 on 12 April
2026 (follow-up)". Pure: plain answers in (as a signed revision stores them), words out.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from ..core.interpretation import interpret
from ..core.questionnaire import SECONDS, Quantity, seconds
from .course import CourseKnowledge, Ordered
from .facts import Facts

KINDS = {"initial": "initial exam", "follow-up": "follow-up"}
VERDICTS = ("improving", "not-improving", "worse")
WORDS = {"improving": "improving", "not-improving": "not improving", "worse": "worse"}
SIDES = ("left", "right")
DURATION = "history.duration"
PT_WEEKS = "history.pt-weeks"
NEURO_SINCE = "neuro.since-last-visit"
ADHERENCE = "follow-up.adherence"
#: The story of the episode: asked at the first visit, kept unless a later visit answers
#: it again (a follow-up asks only part of the history; findings are always re-examined).
CARRIED_PREFIXES = ("history.", "patient.")
_NORMAL = {"normal", 5, "not-done", "not-tested"}


@dataclass(frozen=True)
class Visit:
    """One signed visit of an episode, as the comparisons see it (contract K4)."""

    exam_id: str
    kind: str  # "initial" or "follow-up"
    date: dt.date
    answers: Mapping[str, Any]  # the plain answers format (a revision's ``answers``)
    top_condition: str | None

    @property
    def label(self) -> str:
        return f"{day(self.date)} ({KINDS.get(self.kind, self.kind)})"

    @property
    def named(self) -> str:
        return f"{KINDS.get(self.kind, self.kind)} on {day(self.date)}"


@dataclass(frozen=True)
class Change:
    """One finding compared between two visits: a row of "Since last visit"."""

    link_id: str
    finding: str
    then: str
    now: str
    verdict: str  # improving / not-improving / worse
    detail: str
    before: Visit
    after: Visit

    @property
    def words(self) -> str:
        return WORDS[self.verdict]

    @property
    def compared(self) -> str:
        if self.then == "":
            return f"{self.finding} {self.now} on {self.after.label}"
        return (f"{self.finding} {self.then} on {self.before.label} -> {self.now} on "
                f"{self.after.label}")


@dataclass(frozen=True)
class Comparison:
    """Two visits compared: the rows, what still stands, and the overall course."""

    before: Visit
    after: Visit
    changes: tuple[Change, ...]
    notes: tuple[str, ...]
    verdict: str | None  # None when nothing that decides the course was compared
    deciding: tuple[Change, ...]

    @property
    def text(self) -> str:
        """The comparisons behind the verdict, for a suggestion's explanation."""
        return "; ".join(c.compared for c in self.deciding)


@dataclass(frozen=True)
class Elapsed:
    """Time since onset as of the current visit."""

    weeks: Decimal
    text: str
    at_least: bool  # the first visit did not record the duration: a lower bound


def day(date: dt.date) -> str:
    return f"{date.day} {date:%B %Y}"


def compare(knowledge: CourseKnowledge, before: Visit, after: Visit) -> Comparison:
    """Every finding both visits recorded, in the order of ``course.json``; then the
    neurological screen and what the later visit says about it."""
    rows: list[Change] = []
    for pattern, meaning in knowledge.changes.items():
        for link_id, side in _expand(pattern):
            then, now = _number(before.answers.get(link_id)), _number(after.answers.get(link_id))
            if then is None or now is None:
                continue
            said = interpret(meaning, {meaning.link_id: now}, earlier=(before.date, then))
            verdict = "not-improving"
            if said.meaningful:
                verdict = "improving" if (now > then) == meaning.higher_is_better else "worse"
            unit = knowledge.units.get(pattern, "")
            rows.append(Change(link_id, _label(meaning.label, side), f"{_plain(then)}{unit}",
                               f"{_plain(now)}{unit}", verdict,
                               _detail(now - then, unit, meaning.mcid, said.meaningful),
                               before, after))
    for pattern, order in knowledge.ordered.items():
        for link_id, side in _expand(pattern):
            now_code = _code(after.answers.get(link_id))
            if now_code not in order.words:
                continue
            label = _label(order.label, side)
            if order.rating:
                verdict = ("improving", "not-improving", "worse")[
                    min(_rank(order, now_code), 2)]
                rows.append(Change(link_id, label, "", order.words[now_code], verdict,
                                   f"rated at the {KINDS.get(after.kind, after.kind)}",
                                   before, after))
                continue
            then_code = _code(before.answers.get(link_id))
            if then_code not in order.words:
                continue
            step = _rank(order, now_code) - _rank(order, then_code)
            verdict = "improving" if step < 0 else "worse" if step > 0 else "not-improving"
            rows.append(Change(link_id, label, order.words[then_code], order.words[now_code],
                               verdict, "same" if then_code == now_code else "changed",
                               before, after))
    notes = []
    if _code(after.answers.get(NEURO_SINCE)) == "unchanged":
        notes.append(f"Neurological screen: unchanged since the {before.named}; the findings "
                     f"recorded then still stand.")
    else:
        then_n, now_n = _abnormal_neuro(before.answers), _abnormal_neuro(after.answers)
        if then_n is not None and now_n is not None:
            verdict = ("improving" if now_n < then_n else "worse" if now_n > then_n
                       else "not-improving")
            rows.append(Change("neuro", "Neurological screen: abnormal findings",
                               str(then_n), str(now_n), verdict,
                               f"{now_n - then_n:+d}" if now_n != then_n else "same",
                               before, after))
    deciding = tuple(r for r in rows if pattern_of(r.link_id) in knowledge.course_from)
    verdict = None
    if deciding:
        kinds = {r.verdict for r in deciding}
        verdict = ("worse" if "worse" in kinds else "improving" if "improving" in kinds
                   else "not-improving")
    return Comparison(before, after, tuple(rows), tuple(notes), verdict, deciding)


def course(knowledge: CourseKnowledge, visits: Sequence[Visit]) -> Comparison | None:
    """The response to treatment over the episode: its first visit against the current
    one (the last); None for a single visit."""
    if len(visits) < 2:
        return None
    return compare(knowledge, visits[0], visits[-1])


def since_last_visit(knowledge: CourseKnowledge, visits: Sequence[Visit]) -> Comparison | None:
    """The current visit (the last) against the one before it; None for a single visit."""
    if len(visits) < 2:
        return None
    return compare(knowledge, visits[-2], visits[-1])


def elapsed(visits: Sequence[Visit]) -> Elapsed | None:
    """The duration recorded at the episode's first visit plus the time since it, as of
    the current (last) visit; None for a single visit (its own answer stands)."""
    if len(visits) < 2:
        return None
    first, current = visits[0], visits[-1]
    days = (current.date - first.date).days
    since = Decimal(days) / 7
    recorded = _quantity(first.answers.get(DURATION))
    if recorded is None:
        weeks = since
        return Elapsed(_round(weeks), f"at least {_weeks(weeks)} (the time since the "
                                      f"{first.named}; the duration was not recorded then)",
                       True)
    at_first = seconds(recorded) / SECONDS["wk"]
    weeks = at_first + since
    return Elapsed(_round(weeks), f"{_weeks(weeks)}: {_weeks(at_first)} at the {first.named} "
                                  f"+ {_weeks(since)} since", False)


def loading_weeks(visits: Sequence[Visit]) -> Decimal | None:
    """Weeks of structured physiotherapy or loading as of the current visit: its own
    answer when given; otherwise the first visit's plus the time since it, unless the
    patient said they did none of the programme (adherence 'none')."""
    current = visits[-1]
    own = _number(current.answers.get(PT_WEEKS))
    if own is not None or len(visits) < 2:
        return own
    if _code(current.answers.get(ADHERENCE)) == "none":
        return None
    first = visits[0]
    start = _number(first.answers.get(PT_WEEKS)) or Decimal(0)
    return _round(start + Decimal((current.date - first.date).days) / 7)


def effective_answers(visits: Sequence[Visit]) -> dict[str, Any]:
    """What the engine reasons over at the current visit, in the plain answers format:
    its own answers; the episode's story (history) from the latest visit that recorded
    it; the neurological screen of the visit before when this one says it is unchanged;
    the elapsed time in place of the duration and the weeks of loading."""
    current = dict(visits[-1].answers)
    if len(visits) < 2:
        return current
    for visit in reversed(visits[:-1]):
        for link_id, value in visit.answers.items():
            if link_id.startswith(CARRIED_PREFIXES) and link_id not in current:
                current[link_id] = value
    if _code(visits[-1].answers.get(NEURO_SINCE)) == "unchanged":
        state = effective_answers(visits[:-1])
        for link_id, value in state.items():
            if link_id.startswith("neuro.") and link_id != NEURO_SINCE:
                current[link_id] = value
    time = elapsed(visits)
    if time is not None:
        current[DURATION] = {"value": time.weeks, "unit": "wk"}
    weeks = loading_weeks(visits)
    if weeks is not None:
        current[PT_WEEKS] = int(weeks)
    return current


def loaded(value: Any) -> tuple[Any, ...]:
    """A plain answer as ``answers.load_plain`` makes it (the value was validated when
    its visit was signed): a tuple, quantities as Quantity."""
    values = value if isinstance(value, list) else [value]
    return tuple(Quantity(Decimal(str(v["value"])), v["unit"])
                 if isinstance(v, Mapping) and set(v) == {"value", "unit"} else v
                 for v in values)


@dataclass(frozen=True)
class Episode:
    """The visits an assessment compared: the elapsed time its timing rules used and the
    response to treatment (first visit against this one)."""

    visits: tuple[Visit, ...]
    elapsed: Elapsed | None
    course: Comparison | None

    def as_json(self) -> dict[str, Any]:
        return {
            "visits": [{"exam_id": v.exam_id, "kind": v.kind, "date": v.date.isoformat()}
                       for v in self.visits],
            "elapsed_weeks": float(self.elapsed.weeks) if self.elapsed else None,
            "elapsed": self.elapsed.text if self.elapsed else None,
            "course": self.course.verdict if self.course else None,
            "compared": [{"finding": c.finding, "then": c.then, "now": c.now,
                          "change": c.words, "text": c.compared}
                         for c in (self.course.deciding if self.course else ())],
        }


def plain(answers: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    """Loaded answers back in the plain format the visits are compared in."""
    def one(v: Any) -> Any:
        return {"value": v.value, "unit": v.unit} if isinstance(v, Quantity) else v
    return {k: one(v[0]) if len(v) == 1 else [one(x) for x in v] for k, v in answers.items()}


def over_episode(facts: Facts, visits: Sequence[Visit]) -> Facts:
    """This visit's facts with what the episode adds (``episode.effective_answers``)."""
    current = visits[-1].answers
    effective = effective_answers(visits)
    answers = dict(facts.answers)
    for link_id, value in effective.items():
        if link_id not in current or value is not current[link_id]:
            answers[link_id] = loaded(value)
    return replace(facts, answers=MappingProxyType(answers))  # references, scores kept


def side_of(link_id: str) -> str | None:
    return next((s for s in SIDES if f".{s}" in link_id), None)


def _expand(pattern: str) -> list[tuple[str, str | None]]:
    if "{side}" not in pattern:
        return [(pattern, None)]
    return [(pattern.replace("{side}", s), s) for s in SIDES]


def pattern_of(link_id: str) -> str:
    for side in SIDES:
        link_id = link_id.replace(f".{side}", ".{side}")
    return link_id


def _label(label: str, side: str | None) -> str:
    return label.replace("{side}", side) if side else label


def _rank(order: Ordered, code: str) -> int:
    return next(n for n, group in enumerate(order.best_first) if code in group)


def _abnormal_neuro(answers: Mapping[str, Any]) -> int | None:
    values = [v for k, v in answers.items() if k.startswith("neuro.") and k != NEURO_SINCE]
    if not values:
        return None
    return sum(1 for v in values if v not in _NORMAL)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    return Decimal(str(value))


def _code(value: Any) -> str | None:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value if isinstance(value, str) else None


def _quantity(value: Any) -> Quantity | None:
    if isinstance(value, Quantity):
        return value
    if isinstance(value, Mapping) and value.get("unit") in SECONDS \
            and _number(value.get("value")) is not None:
        return Quantity(_number(value["value"]), value["unit"])  # type: ignore[arg-type]
    return None


def _round(weeks: Decimal) -> Decimal:
    return weeks.quantize(Decimal("0.1"))


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _weeks(weeks: Decimal) -> str:
    text = _plain(_round(weeks))
    return f"{text} week{'' if text == '1' else 's'}"


def _detail(change: Decimal, unit: str, mcid: Decimal | None, meaningful: bool | None) -> str:
    if change == 0:
        return "no change"
    word = "points" if unit == "/10" else unit.strip()
    text = f"{'+' if change > 0 else ''}{_plain(change)} {word}".rstrip()
    if meaningful is False and mcid is not None:
        text += f" (less than {_plain(mcid)})"
    return text
