"""A patient's numeric findings across visits: the stored Observations grouped into one
chart per code, a line per side, with the change in words.

Why by Observation code and not by linkId: the Observations are what was signed and
what the FHIR API serves, and a code means the same finding on every Questionnaire
that records it (the follow-up visit re-uses the initial exam's codes; an outcome
measure's score has its own). So a new visit type or a new outcome measure appears here
without a change of code. Only what was measured at two visits or more is charted: one
point shows no progress.

The words come from ``interpretation.interpret`` (one home for "LEFS +12 since 3 March
2026: a meaningful improvement"); a measure without a sourced MCID gets the change
alone, never a judgement.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import datetimes, interpretation, terminology as t
from .charts import Chart, Marker, Point, Series, number
from .interpretation import Meaning
from .mapping import LATERALITY

#: A code as (system, code): the first coding of an Observation.
Code = tuple[str, str]
#: Charted first, in this order (the issue's headline measures); then the scored
#: outcome measures; then every other re-tested finding in the order first recorded.
FIRST = ((t.EXAM_TESTS, "slr.onset-angle"), (t.EXAM_TESTS, "pain.current"),
         (t.EXAM_TESTS, "pain.worst-week"))
#: The history answers are the visit's context, not findings to trend (time since onset
#: only grows; care received is drawn as markers).
CONTEXT_PREFIX = "history."
_SIDES = {c["code"]: side for side, c in LATERALITY.items()}
#: A change needs a value at this many visits at least.
MIN_VISITS = 2


@dataclass(frozen=True)
class Reading:
    """One numeric value of one signed visit."""

    visit: str
    date: dt.date
    code: Code
    label: str
    unit: str
    side: str  # "left", "right" or "" (no laterality)
    value: Decimal


def readings(observations: Iterable[tuple[str, Mapping[str, Any]]], *, time_zone: str,
             dates: Mapping[str, dt.date] | None = None) -> list[Reading]:
    """The numeric values (valueQuantity, valueInteger, valueDecimal) among
    ``(visit id, Observation)`` pairs, each dated by its visit (``dates``: the visit's
    date, so an amendment signed later does not move the visit) or else by its
    effective time on the clinic's calendar (``time_zone``)."""
    found = []
    for visit, resource in observations:
        value, unit = _value(resource)
        coding = ((resource.get("code") or {}).get("coding") or [{}])[0]
        date = (dates or {}).get(visit) or _date(resource.get("effectiveDateTime"), time_zone)
        if value is None or date is None or "code" not in coding:
            continue
        code = (coding.get("system", ""), coding["code"])
        if code[0] == t.EXAM_TESTS and code[1].startswith(CONTEXT_PREFIX):
            continue
        found.append(Reading(visit=visit, date=date, code=code,
                             label=coding.get("display") or resource["code"].get("text")
                             or code[1], unit=unit, side=_side(resource), value=value))
    return found


def charts(found: Sequence[Reading], *, meanings: Mapping[Code, Meaning] | None = None,
           markers: Sequence[Marker] = ()) -> list[Chart]:
    """One chart per code measured at ``MIN_VISITS`` visits or more, a series per side
    (oldest first; a visit's first value of a code and side), the MCID band and change
    sentence from ``meanings`` (by code) where one is defined, and ``markers`` on each."""
    meanings = meanings or {}
    grouped: dict[Code, dict[str, dict[str, Reading]]] = {}
    for r in sorted(found, key=lambda r: r.date):  # stable: stored order within a day
        grouped.setdefault(r.code, {}).setdefault(r.side, {}).setdefault(r.visit, r)
    order = {code: n for n, code in enumerate(FIRST)}
    scored = {code for code in grouped if code in meanings}
    keys = sorted(grouped, key=lambda c: (0, order[c]) if c in order else
                  (1, 0) if c in scored else (2, 0))
    result = []
    for code in keys:
        sides = grouped[code]
        if len({v for per in sides.values() for v in per}) < MIN_VISITS:
            continue
        meaning = meanings.get(code)
        any_reading = next(iter(next(iter(sides.values())).values()))
        title = meaning.label if meaning else any_reading.label
        series, changes = [], []
        for side in sorted(sides, key=("left", "right", "").index):
            points = tuple(Point(r.date, r.value, r.visit) for r in sides[side].values())
            band = None
            if meaning is not None and meaning.mcid is not None:
                band = (points[0].value - meaning.mcid, points[0].value + meaning.mcid)
            series.append(Series(side, points, band))
            if len(points) >= MIN_VISITS:
                changes.append(change(meaning, title, side, points[0], points[-1]))
        result.append(Chart(key=f"{len(result) + 1}-{_key(code)}", title=title,
                            unit=any_reading.unit, series=tuple(series), markers=tuple(markers),
                            band_note=_band_note(meaning), changes=tuple(changes)))
    return result


def change(meaning: Meaning | None, title: str, side: str, first: Point, last: Point) -> str:
    """The change from the first to the last value in words (``interpret``'s)."""
    label = f"{title}, {side}" if side else title
    said = Meaning(link_id="value", label=label,
                   higher_is_better=meaning.higher_is_better if meaning else True,
                   mcid=meaning.mcid if meaning else None,
                   mcid_source=meaning.mcid_source if meaning else None)
    text = interpretation.interpret(said, {"value": last.value},
                                    earlier=(first.date, first.value)).text
    return text if last.value != first.value else f"{label} unchanged since " \
        f"{first.date.day} {first.date:%B %Y}"


def _band_note(meaning: Meaning | None) -> str | None:
    if meaning is None or meaning.mcid is None:
        return None
    return (f"Shaded: the minimal important change of {meaning.label} "
            f"(±{number(meaning.mcid)}) around the first value. "
            f"Source: {meaning.mcid_source}")


def _value(resource: Mapping[str, Any]) -> tuple[Decimal | None, str]:
    for key in ("valueInteger", "valueDecimal"):
        value = resource.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return Decimal(str(value)), ""
    quantity = resource.get("valueQuantity")
    if isinstance(quantity, Mapping) and isinstance(quantity.get("value"), (int, float)) \
            and not isinstance(quantity.get("value"), bool):
        unit = quantity.get("unit") or quantity.get("code") or ""
        return Decimal(str(quantity["value"])), "" if unit == "{score}" else str(unit)
    return None, ""


def _date(value: Any, time_zone: str) -> dt.date | None:
    if not isinstance(value, str):
        return None
    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(datetimes.zone(time_zone)).date()


def _side(resource: Mapping[str, Any]) -> str:
    for ext in (resource.get("bodySite") or {}).get("extension") or []:
        if ext.get("url") == t.EXT_STRUCTURE_LATERALITY:
            for coding in (ext.get("valueCodeableConcept") or {}).get("coding") or []:
                if coding.get("code") in _SIDES:
                    return _SIDES[coding["code"]]
    return ""


def _key(code: Code) -> str:
    """An element id fragment from a code: [a-z0-9-] only."""
    text = "".join(ch if ch.isalnum() else "-" for ch in code[1].lower())
    return text.strip("-") or "value"
