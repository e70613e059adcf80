"""CDS Hooks 2.0 cards from the engine's output: pure, like the rest of the decision wing.

The web edge (``plugin/web/cds_hooks.py``) parses and authenticates the hook call and
hands plain data here. Prefetched Observations enter the same engine the tablet uses:
``exam_facts`` picks the patient's latest recorded exam among them and reads it back
through the Observation mappings (``facts.from_observations``); ``assessment.assess``
then gives red flags, the ranked differential and referrals, which become cards:

- one card per raised red flag (``critical`` for an emergency, ``warning`` for urgent),
  with the referrals that red flag triggers as suggestions;
- one ``info`` card with the leading condition, its key findings and the remaining
  referrals as suggestions;
- the MRI check for ``order-select`` / ``order-sign``: a ``warning`` when a lumbar MRI
  is being ordered for radicular pain that has not yet lasted the configured
  ``MRI_RADICULAR_PERSISTENCE_WEEKS`` and no red flag is raised.

Suggested ServiceRequests are the ones ``decision.fhir`` builds for the extraction Bundle
(``status = draft``, ``intent = proposal``), minus references to Conditions that exist
only in that Bundle. Every card says it is a suggestion and cites its sources.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from ..core import patient as patient_mod
from ..core import terminology as t
from ..core.mapping import ObservationMappings
from ..core.questionnaire import Form, Quantity, seconds
from . import fhir as decision_fhir
from .assessment import Assessment, RaisedFlag, Referral, assess
from .catalogue import DecisionKnowledge
from .facts import Facts, from_observations

INDICATORS = ("info", "warning", "critical")
MAX_SUMMARY = 139  # the spec: "< 140 characters"
SOURCE_LABEL = "Posterior thigh exam decision support"
SUGGESTION_NOTE = ("*This is a decision-support suggestion, not a diagnosis or an order: "
                   "the clinician decides.*")
#: The service whose codes name a lumbar spine MRI (mappings/decision/referrals.json).
LUMBAR_MRI_SERVICE = "mri-lumbar-spine"
#: Further verified LOINC codes for lumbar spine MRI orders (shared/clinical.md 6.2,
#: "Imaging orders"): without, and without-and-with, contrast. No SNOMED CT procedure
#: code for lumbar MRI is verified there, so none is matched.
LUMBAR_MRI_EXTRA_CODES = frozenset({(t.LOINC, "30679-5"), (t.LOINC, "24967-2")})
#: Findings and threshold the MRI check reuses (mappings/decision/findings.json).
RADICULAR_FINDING = "radicular-cluster"
PERSISTING_FINDING = "radicular-symptoms-persisting"
MRI_THRESHOLD = "MRI_RADICULAR_PERSISTENCE_WEEKS"
MRI_CITATIONS = ("chou-2007", "nice-ng59")
DURATION = "history.duration"
#: The CodeSystem (``questionnaires/codesystems/cds-override-reason.json``, published at
#: /fhir/CodeSystem) of why a clinician may still order the MRI: the card's
#: ``overrideReasons`` are its concepts (``override_reasons``), and the feedback an EHR
#: sends back is checked against it.
OVERRIDE_REASONS = "cds-override-reason"

NewId = Callable[[], str]
#: CDS Hooks ``overrideReasons``: Codings (system, code, display).
Reasons = Sequence[Mapping[str, str]]


def override_reasons(code_system: Mapping[str, Any]) -> tuple[dict[str, str], ...]:
    """The ``overrideReasons`` a card offers: every concept of ``code_system`` (a
    CodeSystem resource), in its order, as Codings."""
    return tuple({"system": code_system["url"], "code": c["code"], "display": c["display"]}
                 for c in code_system["concept"])


def _new_uuid() -> str:
    return str(uuid.uuid4())


# --- reading the prefetched exam -----------------------------------------------------

@dataclass(frozen=True)
class RecordedExam:
    """The facts of the latest exam found among a patient's Observations."""

    facts: Facts
    recorded: dt.datetime | None  # effectiveDateTime of its Observations
    exam_id: str | None  # our identifier's exam part, when the Observations carry it


def exam_facts(form: Form, mappings: ObservationMappings,
               observations: Iterable[Mapping[str, Any]], *, patient_id: str,
               patient: Mapping[str, Any] | None = None) -> RecordedExam | None:
    """The latest exam among ``observations`` (only those about ``patient_id`` and
    coded with our exam-tests system), or None when there is none.

    An EHR holds every exam ever recorded; mixing two would give contradictory answers,
    so Observations are grouped by exam (our identifier, else their effective time) and
    the most recent group is read. Raises ``InputError`` when that exam's Observations
    do not fit the Questionnaire.
    """
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for obs in observations:
        if not isinstance(obs, Mapping) or obs.get("resourceType") != "Observation":
            continue
        if not _about(obs, patient_id) or _exam_code(obs) is None:
            continue
        groups.setdefault(_exam_key(obs), []).append(obs)
    if not groups:
        return None
    key, chosen = max(groups.items(), key=lambda kv: _latest(kv[1]) or _EPOCH)
    recorded = _latest(chosen)
    age = None
    birth_date = (patient or {}).get("birthDate")
    if isinstance(birth_date, str) and recorded is not None:
        try:
            age = patient_mod.age_on(birth_date, recorded.date())
        except (ValueError, IndexError):
            age = None  # an unreadable birthDate: the exam's own age answer, if any
    facts = from_observations(form, mappings, chosen, age=age if age and age >= 0 else None)
    return RecordedExam(facts, recorded, key[1] if key[0] == "exam" else None)


_EPOCH = dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)


def _about(obs: Mapping[str, Any], patient_id: str) -> bool:
    reference = (obs.get("subject") or {}).get("reference")
    return isinstance(reference, str) and (
        reference == f"Patient/{patient_id}" or reference.endswith(f"/Patient/{patient_id}"))


def _exam_code(obs: Mapping[str, Any]) -> str | None:
    for coding in (obs.get("code") or {}).get("coding") or []:
        if isinstance(coding, Mapping) and coding.get("system") == t.EXAM_TESTS:
            code = coding.get("code")
            return code if isinstance(code, str) else None
    return None


def _exam_key(obs: Mapping[str, Any]) -> tuple[str, str | None]:
    """Our identifier is ``<exam id>/<linkId>[/<answer code>]``; the linkId is the code."""
    code = _exam_code(obs)
    for identifier in obs.get("identifier") or []:
        if isinstance(identifier, Mapping) and identifier.get("system") == t.ID_OBSERVATION:
            value = identifier.get("value")
            if isinstance(value, str) and f"/{code}" in value:
                return ("exam", value[:value.index(f"/{code}")])
    effective = obs.get("effectiveDateTime")
    return ("effective", effective if isinstance(effective, str) else None)


def _latest(observations: Sequence[Mapping[str, Any]]) -> dt.datetime | None:
    times = [_when(o.get("effectiveDateTime")) for o in observations]
    known = [x for x in times if x is not None]
    return max(known) if known else None


def _when(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def facts_on(facts: Facts, recorded: dt.datetime | None, now: dt.datetime) -> Facts:
    """The facts as they stand ``now``: the time since onset grows by the time since
    the exam (an exam three weeks old that said "2 weeks" means 5 weeks today)."""
    durations = facts.answers.get(DURATION)
    if not durations or recorded is None or now <= recorded:
        return facts
    duration = durations[0]
    if not isinstance(duration, Quantity):
        return facts
    days = seconds(duration) / 86400 + Decimal((now - recorded).total_seconds()) / 86400
    answers = dict(facts.answers)
    answers[DURATION] = (Quantity(days.quantize(Decimal("0.01")), "d"),)
    return replace(facts, answers=MappingProxyType(answers))


# --- cards ---------------------------------------------------------------------------

def source(knowledge: DecisionKnowledge, topic: Mapping[str, str] | None = None
           ) -> dict[str, Any]:
    result: dict[str, Any] = {"label": f"{SOURCE_LABEL} (knowledge {knowledge.version})"}
    if topic:
        result["topic"] = dict(topic)
    return result


def launch_card(launch_url: str, knowledge: DecisionKnowledge, *, has_exam: bool,
                new_id: NewId = _new_uuid) -> dict[str, Any]:
    """The card every patient-view gets: a SMART link that opens the exam app."""
    summary = ("Posterior thigh exam on record: open the exam app to review or repeat it"
               if has_exam else "Posterior thigh pain? A structured exam is available")
    return {
        "uuid": new_id(),
        "summary": summary,
        "indicator": "info",
        "detail": ("Structured examination for posterior thigh pain (hamstring, sciatic, "
                   "deep gluteal, sacroiliac and lumbar causes) with red-flag screening and "
                   "a ranked differential.\n\n" + SUGGESTION_NOTE),
        "source": source(knowledge),
        "links": [{"label": "Open the posterior thigh exam", "url": launch_url,
                   "type": "smart"}],
    }


def assessment_cards(knowledge: DecisionKnowledge, result: Assessment, *,
                     subject: Mapping[str, Any], encounter: Mapping[str, Any] | None,
                     exam_id: str, authored: str, recorded: dt.datetime | None,
                     new_id: NewId = _new_uuid) -> list[dict[str, Any]]:
    """Red-flag cards (most urgent first), then the differential card."""
    requests = _service_requests(result, exam_id=exam_id, subject=subject,
                                 encounter=encounter, authored=authored)
    flag_of = _referrals_by_flag(knowledge, result)
    cards = []
    used: set[str] = set()
    order = ("emergency", "urgent")
    for flag in sorted(result.red_flags, key=lambda f: order.index(f.definition.urgency)):
        referrals = [r for r in result.referrals if flag.definition.id in flag_of[r.service.id]
                     and r.service.id not in used]
        used.update(r.service.id for r in referrals)
        cards.append(_red_flag_card(knowledge, flag, referrals, requests, recorded, new_id))
    if result.differential:
        rest = [r for r in result.referrals if r.service.id not in used]
        cards.append(_differential_card(knowledge, result, rest, requests, recorded, new_id))
    return cards


def _referrals_by_flag(knowledge: DecisionKnowledge, result: Assessment) -> dict[str, set[str]]:
    """Service id -> the red flags its firing rules rest on."""
    rules = {r.id: r for r in knowledge.rules}
    return {r.service.id: {id_ for rule in r.rules for kind, id_ in rules[rule].when.refs()
                           if kind == "red_flag"} for r in result.referrals}


def _service_requests(result: Assessment, *, exam_id: str, subject: Mapping[str, Any],
                      encounter: Mapping[str, Any] | None, authored: str
                      ) -> dict[str, dict[str, Any]]:
    """Service id -> the draft ServiceRequest ``decision.fhir`` builds for it; reasons
    point at the EHR's own Observations, never at Conditions that were not created."""
    references = result.facts.references
    built = decision_fhir.resources(result, exam_id=exam_id, subject=subject,
                                    encounter=encounter, authored=authored,
                                    resolve=lambda s: references.get(s),
                                    full_url=lambda identifier: "")
    requests = {}
    for resource in built:
        if resource["resourceType"] != "ServiceRequest":
            continue
        reasons = [r for r in resource.get("reasonReference", []) if r.get("type") != "Condition"]
        if reasons:
            resource["reasonReference"] = reasons
        else:
            resource.pop("reasonReference", None)
        service = next(c["code"] for c in resource["code"]["coding"]
                       if c["system"] == t.DECISION_SUPPORT)
        requests[service] = resource
    return requests


def _suggestions(referrals: Sequence[Referral], requests: Mapping[str, dict[str, Any]],
                 new_id: NewId) -> list[dict[str, Any]]:
    return [{"label": _short(f"Propose: {r.service.display} ({r.priority})", 80),
             "uuid": new_id(),
             "isRecommended": r.priority != "routine",
             "actions": [{"type": "create",
                          "description": _short(
                              f"Draft referral: {r.service.display}. {r.timing}", 200),
                          "resource": requests[r.service.id]}]}
            for r in referrals if r.service.id in requests]


def _with_suggestions(card: dict[str, Any], suggestions: list[dict[str, Any]]) -> dict[str, Any]:
    if suggestions:
        # Referrals are independent (an emergency department visit AND an MRI), so the
        # clinician may accept any of them, not only one.
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "any"
    return card


def _red_flag_card(knowledge: DecisionKnowledge, flag: RaisedFlag,
                   referrals: Sequence[Referral], requests: Mapping[str, dict[str, Any]],
                   recorded: dt.datetime | None, new_id: NewId) -> dict[str, Any]:
    d = flag.definition
    indicator = "critical" if d.urgency == "emergency" else "warning"
    lines = [f"**{d.action}**", "", f"Recorded in the exam{_on(recorded)}:"]
    lines += [f"- {f.display}" + (f" ({', '.join(f.sides)})" if f.sides else "")
              for f in flag.findings]
    lines += ["", d.rationale, "", SUGGESTION_NOTE, "", *_sources(knowledge, d.citations)]
    topic = {"system": t.DECISION_SUPPORT, "code": d.id, "display": d.display}
    card = {"uuid": new_id(),
            "summary": _short(f"{'EMERGENCY' if indicator == 'critical' else 'Urgent'} "
                              f"red flag: {d.display}"),
            "indicator": indicator, "detail": "\n".join(lines),
            "source": source(knowledge, topic)}
    return _with_suggestions(card, _suggestions(referrals, requests, new_id))


def _differential_card(knowledge: DecisionKnowledge, result: Assessment,
                       referrals: Sequence[Referral], requests: Mapping[str, dict[str, Any]],
                       recorded: dt.datetime | None, new_id: NewId) -> dict[str, Any]:
    top = result.differential[0]
    lines = [f"Leading condition from the exam{_on(recorded)}: **{top.condition.display}** "
             f"(likelihood {top.likelihood}, confidence {top.confidence}).", "",
             "Key findings for it:"]
    lines += [f"- {e.label} ({e.basis})" for e in top.for_ if e.weight]
    against = [f"- {e.label}" for e in top.against if e.weight]
    if against:
        lines += ["", "Against it:", *against]
    others = [c for c in result.differential[1:] if c.suggested]
    if others:
        lines += ["", "Also considered: " + "; ".join(
            f"{c.condition.display} ({c.likelihood})" for c in others) + "."]
        lines += [c.ranking_note for c in others if c.ranking_note]
    if top.missing_tests:
        lines += ["", f"Not assessed: {'; '.join(top.missing_tests)} (not counted as "
                      "negative)."]
    ranking = [c for o in others for c in o.ranking_citations]
    lines += ["", SUGGESTION_NOTE, "", *_sources(knowledge, [*top.citations, *ranking])]
    topic = {"system": t.DECISION_SUPPORT, "code": top.condition.id,
             "display": top.condition.display}
    card = {"uuid": new_id(),
            "summary": _short(f"Exam suggests {top.condition.display} "
                              f"(likelihood {top.likelihood})"),
            "indicator": "info", "detail": "\n".join(lines),
            "source": source(knowledge, topic)}
    return _with_suggestions(card, _suggestions(referrals, requests, new_id))


# --- the MRI check (order-select / order-sign) ---------------------------------------

def lumbar_mri_orders(knowledge: DecisionKnowledge, draft_orders: Mapping[str, Any]
                      ) -> list[dict[str, Any]]:
    """The ServiceRequests in a ``draftOrders`` Bundle that order a lumbar spine MRI."""
    service = knowledge.services[LUMBAR_MRI_SERVICE]
    codes = {(c.get("system"), c.get("code")) for c in service.codes}
    codes |= LUMBAR_MRI_EXTRA_CODES | {(t.DECISION_SUPPORT, LUMBAR_MRI_SERVICE)}
    found = []
    for entry in draft_orders.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping) or resource.get("resourceType") != "ServiceRequest":
            continue
        codings = (resource.get("code") or {}).get("coding") or []
        if any(isinstance(c, Mapping) and (c.get("system"), c.get("code")) in codes
               for c in codings):
            found.append(dict(resource))
    return found


def early_mri_warning(knowledge: DecisionKnowledge, result: Assessment,
                      orders: Sequence[Mapping[str, Any]], *, recorded: dt.datetime | None,
                      reasons: Reasons, new_id: NewId = _new_uuid) -> dict[str, Any] | None:
    """A warning when lumbar MRI is ordered for radicular pain that has not persisted
    past the configured threshold, with no red flag; None otherwise.

    ``result`` must be assessed over the facts as they stand today (``facts_on``). The
    decision reuses the knowledge's own findings: the radicular cluster, and
    ``radicular-symptoms-persisting`` (the MRI_RADICULAR_PERSISTENCE_WEEKS threshold);
    an unknown duration never warns. ``reasons`` are its ``overrideReasons``
    (``override_reasons`` of the cds-override-reason CodeSystem).
    """
    if not orders or result.red_flags:
        return None
    findings = result.findings
    if findings.truth(RADICULAR_FINDING) is not True:
        return None
    if findings.truth(PERSISTING_FINDING) is not False:  # persisting, or duration unknown
        return None
    weeks = knowledge.thresholds[MRI_THRESHOLD]
    rule = next((r for r in knowledge.rules if r.service == LUMBAR_MRI_SERVICE
                 and ("finding", PERSISTING_FINDING) in r.when.refs()), None)
    lines = [f"The exam{_on(recorded)} shows radicular pain for less than {weeks:g} weeks "
             "and no red flag (cauda equina, severe or progressive motor deficit, suspected "
             "serious pathology).", "",
             "Most radicular pain settles within weeks. Guidelines advise MRI for "
             "persistent radicular pain only in patients who are candidates for an "
             "epidural injection or surgery, and prompt imaging only for red flags."]
    if rule is not None:
        lines += ["", f"Referral rule: {rule.reason}"]
    lines += ["", SUGGESTION_NOTE, "", *_sources(knowledge, MRI_CITATIONS)]
    card: dict[str, Any] = {
        "uuid": new_id(),
        "summary": _short(f"Lumbar MRI before {weeks:g} weeks of radicular pain without red "
                          "flags rarely changes care"),
        "indicator": "warning",
        "detail": "\n".join(lines),
        "source": source(knowledge, {"system": t.DECISION_SUPPORT, "code": LUMBAR_MRI_SERVICE,
                                     "display": knowledge.services[LUMBAR_MRI_SERVICE].display}),
        "overrideReasons": [dict(r) for r in reasons],
    }
    removable = [o for o in orders if isinstance(o.get("id"), str)]
    if removable:
        card["suggestions"] = [{
            "label": "Remove the lumbar MRI order for now", "uuid": new_id(),
            "actions": [{"type": "delete", "description": "Remove the draft lumbar MRI order",
                         "resourceId": f"ServiceRequest/{o['id']}"} for o in removable]}]
        card["selectionBehavior"] = "at-most-one"
    return card


def check_mri_order(knowledge: DecisionKnowledge, exam: RecordedExam | None,
                    draft_orders: Mapping[str, Any], *, now: dt.datetime, reasons: Reasons,
                    new_id: NewId = _new_uuid) -> list[dict[str, Any]]:
    """The order-select / order-sign cards: the early-MRI warning, or none."""
    orders = lumbar_mri_orders(knowledge, draft_orders)
    if not orders or exam is None:
        return []
    result = assess(knowledge, facts_on(exam.facts, exam.recorded, now))
    card = early_mri_warning(knowledge, result, orders, recorded=exam.recorded,
                             reasons=reasons, new_id=new_id)
    return [card] if card else []


# --- text helpers --------------------------------------------------------------------

def _on(recorded: dt.datetime | None) -> str:
    return f" of {recorded.date().isoformat()}" if recorded else ""


def _sources(knowledge: DecisionKnowledge, citations: Iterable[str]) -> list[str]:
    lines = ["Sources:"]
    lines += [f"- {knowledge.citations[c].text}" for c in dict.fromkeys(citations)
              if c in knowledge.citations]
    return lines if len(lines) > 1 else []


def _short(text: str, limit: int = MAX_SUMMARY) -> str:
    """``text`` cut at a word to at most ``limit`` characters (with an ellipsis)."""
    if len(text) <= limit:
        return text
    return text[:limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:-") + "…"
