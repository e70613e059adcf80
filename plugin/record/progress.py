"""A patient's visits and progress: the visit list of the patient page, and the charts
of the progress page and of a signed summary.

Everything is read from what was stored at each signature, never derived again: the
Observations the FHIR API serves (one query for all of them), each revision's signed
answers and impression, and its frozen assessment's top condition (``adapters.visits``,
one query). Referrals the clinician made (the signed impression's orders) and the care
the history answers report (physiotherapy, injections, shockwave therapy) are drawn as
dated markers.

At a signature the summary is frozen with the charts of the visits up to and including
the one being signed (``Pending``): later visits never change a signed document.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..adapters import observation_store, visits as visits_store
from ..adapters.store import Store
from ..core import charts as charts_mod, datetimes, trends
from ..core.charts import Chart, Marker
from ..decision import impression as impression_mod
from ..knowledge import DECISION_FORM, FOLLOW_UP_FORM

#: A visit's type, by the id of the Questionnaire it was recorded with.
KINDS = {DECISION_FORM: "Initial exam", FOLLOW_UP_FORM: "Follow-up"}
SIDE = "history.affected-side"
#: The history answers that record care, drawn as markers when first reported.
PT_WEEKS, INJECTIONS, ESWT = "history.pt-weeks", "history.injections", "history.eswt"
#: The value types of a number: an observation mapping's (``core.mapping``) or a score's.
NUMERIC = frozenset({"Quantity", "integer", "decimal"})


@dataclass(frozen=True)
class Visit:
    """One line of the patient page's visit list (words only: no codes, no ids shown)."""

    exam_id: str
    kind: str
    date: dt.date
    signed: bool
    side: str | None
    #: the frozen assessment's first suggested condition; None: none suggested or not
    #: known (a draft; a revision signed before freezing)
    top_condition: str | None


@dataclass(frozen=True)
class Progress:
    visits: tuple[Visit, ...]  # the signed ones, oldest first
    charts: tuple[Chart, ...]
    markers: tuple[Marker, ...] = ()

    @property
    def markers_list(self) -> Any:
        """The marked events in words, listed once above the charts."""
        return charts_mod.markers(self.markers)

    @property
    def enough(self) -> bool:
        """Progress needs two signed visits."""
        return len(self.visits) >= trends.MIN_VISITS


@dataclass(frozen=True)
class Pending:
    """The visit being signed, not yet stored: its Observations as they will be served
    (``record.observations.of_revision``), answers, signed impression and assessment."""

    exam_id: str
    questionnaire: str
    signed_at: dt.datetime
    answers: Mapping[str, Any]
    observations: Sequence[Mapping[str, Any]]
    assessment: Mapping[str, Any]
    impression: Mapping[str, Any] | None = None


def visits(store: Store, kb: Any, patient_id: str, *, time_zone: str) -> list[Visit]:
    """Every exam of the patient, newest first, as the patient page lists them."""
    return [_visit(kb, row, time_zone) for row in reversed(visits_store.of_patient(
        store, patient_id))]


def progress(store: Store, kb: Any, patient_id: str, *, time_zone: str,
             pending: Pending | None = None) -> Progress:
    """The charts of the patient's signed visits (with ``pending``: of those up to and
    including it, it as it is about to be signed)."""
    rows = [r for r in visits_store.of_patient(store, patient_id) if r.revisions]
    if pending is not None:
        previous = next((r for r in rows if r.exam_id == pending.exam_id), None)
        first = previous.first_signed if previous is not None else pending.signed_at
        rows = [r for r in rows if r.exam_id != pending.exam_id and r.first_signed <= first]
        rows.append(visits_store.VisitRow(
            exam_id=pending.exam_id, questionnaire=pending.questionnaire, state="signed",
            created=first, revisions=1, first_signed=first, answers=pending.answers,
            impression=pending.impression, top=_top(pending.assessment)))
    shown = [_visit(kb, row, time_zone) for row in rows]
    dates = {v.exam_id: v.date for v in shown}
    stored = [(exam_id, resource) for exam_id, resource in _observations(store, kb, patient_id)
              if exam_id in dates and (pending is None or exam_id != pending.exam_id)]
    if pending is not None:
        stored += [(pending.exam_id, o) for o in pending.observations]
    markers = tuple(_markers(kb, rows, dates))
    found = trends.readings(stored, time_zone=time_zone, dates=dates)
    made = trends.charts(found, meanings=meanings(kb), markers=markers)
    return Progress(visits=tuple(shown), charts=tuple(made), markers=markers)


def meanings(kb: Any) -> dict[trends.Code, Any]:
    """Each outcome-measure score's interpretation (MCID), by the code its Observation
    carries (the score item's first coding)."""
    found = {}
    for instrument in kb.instruments.values():
        items = {i.get("linkId"): i for i in _walk(instrument.resource.get("item") or [])}
        for calc in instrument.calculations:
            meaning = kb.interpretations.get(calc.link_id)
            codes = (items.get(calc.link_id) or {}).get("code") or []
            if meaning is not None and codes:
                found[(codes[0].get("system", ""), codes[0]["code"])] = meaning
    return found


def _observations(store: Store, kb: Any, patient_id: str
                  ) -> list[tuple[str, Mapping[str, Any]]]:
    """The patient's current Observations of a numeric finding or score, oldest first
    (one query; the coded findings, most of an exam, stay in the database)."""
    return observation_store.of_codes(store.engine, patient_id, numeric_codes(kb))


def numeric_codes(kb: Any) -> frozenset[trends.Code]:
    """The codes of every numeric finding the loaded knowledge records (every
    Questionnaire's observation mappings: a follow-up's too) and of every numeric
    outcome-measure score: what can be charted, read from the knowledge, not listed."""
    found = {(m.codes[0]["system"], m.codes[0]["code"])
             for mappings in kb.observation_mappings.values()
             for m in mappings.by_link_id.values() if m.value in NUMERIC and m.codes
             and not m.codes[0]["code"].startswith(trends.CONTEXT_PREFIX)}
    for instrument in kb.instruments.values():
        items = {i.get("linkId"): i for i in _walk(instrument.resource.get("item") or [])}
        for calc in instrument.calculations:
            codes = (items.get(calc.link_id) or {}).get("code") or []
            if calc.type in NUMERIC and codes:
                found.add((codes[0].get("system", ""), codes[0]["code"]))
    return frozenset(found)


def _visit(kb: Any, row: visits_store.VisitRow, time_zone: str) -> Visit:
    form = kb.form_for(row.questionnaire)
    kind = KINDS.get(form.id, form.title) if form is not None else "Exam"
    moment = row.first_signed or row.created
    date = dt.date.fromisoformat(datetimes.local_date(moment, time_zone))
    side = _one((row.answers or {}).get(SIDE))
    return Visit(exam_id=row.exam_id, kind=kind, date=date, signed=bool(row.revisions),
                 side=_option(kb, row.questionnaire, SIDE, side)
                 if isinstance(side, str) else None,
                 top_condition=_condition(kb, row.top))


def _condition(kb: Any, top: Mapping[str, Any] | None) -> str | None:
    """A visit's top condition in words: a condition id named as the decision
    knowledge names it (as the signed impression's view does), or the display the
    frozen assessment printed."""
    if not top:
        return None
    if "condition" in top and "display" not in top:
        known = {c.id: c.display for c in kb.decision.conditions}
        return known.get(top["condition"],
                         f"{top['condition']} (no longer in the vocabulary)")
    return top.get("display") if top.get("suggested") else None


def _top(assessment: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first suggested condition of an assessment (its JSON), as a visit row holds it."""
    suggested = [c for c in assessment.get("differential") or [] if c.get("suggested")]
    return {"condition": suggested[0]["condition"]} if suggested else {}


def _markers(kb: Any, rows: Sequence[visits_store.VisitRow],
             dates: Mapping[str, dt.date]) -> list[Marker]:
    """Referrals made (the signed impression's orders) on their visit's date, and care
    first reported in the history answers (a new injection, physiotherapy, shockwave
    therapy) on the date of the visit that first reported it."""
    found: list[Marker] = []
    seen_pt = seen_eswt = False
    injections: set[str] = set()
    for row in rows:
        day, answers = dates[row.exam_id], row.answers or {}
        for order in impression_mod.orders(impression_mod.read(row.impression)):
            service = kb.decision.services.get(order.service)
            found.append(Marker(day, f"Referral made: "
                                     f"{service.display if service else order.service}"))
        weeks = _one(answers.get(PT_WEEKS))
        if isinstance(weeks, int) and not isinstance(weeks, bool) and weeks > 0 \
                and not seen_pt:
            seen_pt = True
            found.append(Marker(day, f"Physiotherapy reported ({weeks} week"
                                     f"{'s' if weeks != 1 else ''} so far)"))
        codes = answers.get(INJECTIONS)
        for code in codes if isinstance(codes, list) else [codes] if codes else []:
            if isinstance(code, str) and code != "none" and code not in injections:
                injections.add(code)
                found.append(Marker(day, f"Injection reported: "
                                         f"{_option(kb, row.questionnaire, INJECTIONS, code)}"))
        if _one(answers.get(ESWT)) is True and not seen_eswt:
            seen_eswt = True
            found.append(Marker(day, "Shockwave therapy reported"))
    return sorted(found, key=lambda m: m.date)


def _option(kb: Any, questionnaire: str, link_id: str, code: str) -> str:
    form = kb.form_for(questionnaire)
    item = form.item(link_id) if form is not None else None
    option = item.option(code) if item is not None else None
    return option.display if option is not None else code


def _one(value: Any) -> Any:
    """A plain answer's single value (a repeating item's first)."""
    return value[0] if isinstance(value, list) and value else value


def _walk(items: Sequence[Mapping[str, Any]]) -> Any:
    for item in items:
        yield item
        yield from _walk(item.get("item") or [])
