"""What a follow-up's pages and documents show about the episode: the "Since last visit"
table, the return-to-sport checklist and, for the patient, what has improved.

Why one builder: the tablet review, the clinician summary and the handout must say the
same words for the same visits, and the documents are frozen at signing, so the view is
plain JSON-able data built once from the visits (``decision/episode``) and the
criteria (``decision/return_to_sport``). Pure: no store, no templates.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..core.interpretation import Meaning, interpret
from . import episode as ep
from . import return_to_sport as rts_mod


def view(course: ep.CourseKnowledge, rts: rts_mod.ReturnToSport | None,
         visits: Sequence[ep.Visit], *, impression: Iterable[str] = (),
         proms: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
         meanings: Mapping[str, Meaning] | None = None) -> dict[str, Any] | None:
    """The episode's view for the current (last) visit; None for a single visit.

    ``proms``: the score values by score linkId at the previous and the current visit
    (``prom_scores``), interpreted with ``meanings`` (``core.interpretation``)."""
    comparison = ep.since_last_visit(course, visits)
    if comparison is None:
        return None
    rows = [{"finding": c.finding, "then": c.then, "now": c.now, "change": c.words,
             "verdict": c.verdict, "detail": c.detail} for c in comparison.changes]
    rows += _prom_rows(comparison.before, proms, meanings or {})
    readiness = None
    if rts is not None and rts_mod.applies(rts, visits, impression):
        readiness = rts_mod.evaluate(rts, visits)
    return {
        "before": comparison.before.label, "after": comparison.after.label,
        "rows": rows, "notes": list(comparison.notes),
        "return_to_sport": _readiness(readiness) if readiness else None,
        "improved": improved(course, comparison),
    }


def improved(course: ep.CourseKnowledge, comparison: ep.Comparison) -> list[str]:
    """The handout's "What has improved", in short plain sentences."""
    better = [c for c in comparison.changes if c.verdict == "improving"]
    worse = [c for c in comparison.changes if c.verdict == "worse"]
    lines = []
    for change in better:
        plain = _plain(course, change)
        if not plain:
            continue
        line = f"{plain[0].upper()}{plain[1:]} is better than at your last visit."
        if change.now.endswith("/10"):
            line += (f" It was {change.then[:-3]} out of 10. Now it is "
                     f"{change.now[:-3]} out of 10.")
        lines.append(line)
    if not lines:
        lines.append("We did not find a clear change since your last visit.")
    if worse:
        names = [p for p in (_plain(course, c) for c in worse) if p]
        if names:
            lines.append(f"Not better yet: {', '.join(names)}.")
    if worse or not better:
        lines.append("Your clinician will talk with you about the next step.")
    return lines


def prom_scores(responses: Iterable[Mapping[str, Any]],
                meanings: Mapping[str, Meaning]) -> dict[str, Any]:
    """The interpreted scores of a visit's scored QuestionnaireResponses (contract K1:
    scores are answers of the score items), by score linkId."""
    found: dict[str, Any] = {}

    def walk(items: Iterable[Mapping[str, Any]]) -> None:
        for item in items:
            if item.get("linkId") in meanings and item.get("answer"):
                answer = item["answer"][0]
                value = next((v for k, v in answer.items() if k.startswith("value")), None)
                if isinstance(value, Mapping):  # a coded score (a band)
                    value = value.get("code")
                found[item["linkId"]] = value
            walk(item.get("item") or [])
    for response in responses:
        walk(response.get("item") or [])
    return found


def _prom_rows(before: ep.Visit, proms: tuple[Mapping[str, Any], Mapping[str, Any]] | None,
               meanings: Mapping[str, Meaning]) -> list[dict[str, Any]]:
    if not proms:
        return []
    then, now = proms
    rows = []
    for link_id, meaning in meanings.items():
        if link_id not in now:
            continue
        earlier = (before.date, then[link_id]) if link_id in then else None
        said = interpret(meaning, {**now}, earlier=earlier)
        verdict = "not-improving"
        if said.meaningful and said.change is not None:
            verdict = "improving" if (said.change > 0) == meaning.higher_is_better else "worse"
        rows.append({"finding": meaning.label, "then": _text(then.get(link_id)),
                     "now": _text(now[link_id]),
                     "change": ep.WORDS[verdict] if said.meaningful is not None else "",
                     "verdict": verdict if said.meaningful is not None else None,
                     "detail": said.text})
    return rows


def _readiness(readiness: rts_mod.Readiness) -> dict[str, Any]:
    return {
        "summary": readiness.summary,
        "criteria": [{"text": s.criterion.text, "status": s.status, "words": s.words,
                      "consensus": s.criterion.consensus,
                      "history": [{"visit": v.label, "words": rts_mod.WORDS[st]}
                                  for v, st in s.history]}
                     for s in readiness.criteria],
        "tests": [{"text": t.test.text, "side": t.side, "unit": t.test.unit,
                   "caveat": t.test.caveat,
                   "readings": [{"visit": v.label, "value": _text(value)}
                              for v, value in t.values]}
                  for t in readiness.tests],
        "source": readiness.source,
        "shared_decision": readiness.shared_decision,
    }


def _plain(course: ep.CourseKnowledge, change: ep.Change) -> str:
    if change.link_id == "neuro":
        return "the nerve tests"
    plain = course.plain.get(ep.pattern_of(change.link_id), "")
    side = ep.side_of(change.link_id)
    return plain.replace("{side}", side) if side else plain


def _text(value: Any) -> str:
    if value is None:
        return ""
    return format(value, "g") if isinstance(value, float) else str(value)
