"""The clinician's impression and plan: what the clinician decided, apart from what the
decision support suggested.

The suggestions (ranked differential, proposed referrals) are the engine's; this is the
clinician's own: a working diagnosis (a condition of the decision vocabulary, provisional
or confirmed), a decision per referral service (make it, at a priority, or not, with a
reason) and a short note. It is stored as plain JSON with the draft and with every signed
revision, so the record keeps what was decided even when the knowledge changes later.

Decisions are keyed by service, not by suggestion: whether a decision *accepts*,
*changes* or *drops* a suggestion, or *adds* a referral, is read against the assessment
of the answers being signed (``referral_outcomes``), so editing an answer that changes
the suggestions never leaves a decision pointing at a suggestion that is gone.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .catalogue import PRIORITIES, DecisionKnowledge

#: Condition.verificationStatus codes a clinician may choose (the differential is the
#: engine's; refuted/entered-in-error have no place on a new impression).
STATUSES = ("provisional", "confirmed")
#: The longest note (a few sentences: the record and the PDFs print it in full).
MAX_NOTE = 1000
#: The longest reason for a referral decision.
MAX_REASON = 300
#: How a referral decision reads against the suggestions.
OUTCOMES = ("accepted", "changed", "dropped", "added", "undecided")
#: How the working diagnosis reads against the ranked suggestions.
DIAGNOSIS_OUTCOMES = ("accepted", "other-suggestion", "changed", "none")


@dataclass(frozen=True)
class ReferralDecision:
    """Make the referral to ``service`` (``order``) at ``priority``, or not; ``reason``
    is required to drop a suggestion or to add a referral that was not suggested."""

    service: str
    order: bool
    priority: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Impression:
    condition: str | None = None
    status: str | None = None
    referrals: tuple[ReferralDecision, ...] = ()
    note: str | None = None

    @property
    def empty(self) -> bool:
        return self.condition is None and not self.referrals and not self.note

    def decision(self, service: str) -> ReferralDecision | None:
        return next((r for r in self.referrals if r.service == service), None)

    def as_json(self) -> dict[str, Any]:
        """The stored form (what ``load`` reads back)."""
        result: dict[str, Any] = {}
        if self.condition:
            result["diagnosis"] = {"condition": self.condition, "status": self.status}
        if self.referrals:
            result["referrals"] = {r.service: {k: v for k, v in (
                ("order", r.order), ("priority", r.priority), ("reason", r.reason))
                if v is not None} for r in self.referrals}
        if self.note:
            result["note"] = self.note
        return result


NONE = Impression()


@dataclass(frozen=True)
class Outcome:
    """One referral decision read against the suggestions (see ``OUTCOMES``)."""

    service: str
    display: str
    outcome: str
    suggested_priority: str | None
    priority: str | None
    reason: str | None


def load(knowledge: DecisionKnowledge, data: Any, *, prefix: str = "impression") -> Impression:
    """Check the clinician's decision against the decision vocabulary. Every problem is
    reported at once, by field (``impression.diagnosis.condition``,
    ``impression.referrals.<service>.reason``, ``impression.note``), as a 422."""
    if data is None:
        return NONE
    issues: list[tuple[str, str]] = []
    if not isinstance(data, Mapping):
        raise InputError("The impression must be an object.", expression=prefix, status=422)
    unknown = set(data) - {"diagnosis", "referrals", "note", "outcomes"}  # outcomes: signed
    for key in sorted(unknown):
        issues.append((f"{prefix}.{key}", f"Unknown field {key!r}."))
    condition = status = None
    diagnosis = data.get("diagnosis")
    if diagnosis not in (None, {}):
        where = f"{prefix}.diagnosis"
        if not isinstance(diagnosis, Mapping):
            issues.append((where, "Expected a condition and a status."))
        else:
            condition, status = diagnosis.get("condition"), diagnosis.get("status")
            known = {c.id for c in knowledge.conditions}
            if condition in (None, ""):
                condition = None
            elif condition not in known:
                issues.append((f"{where}.condition",
                               "Choose a condition from the list (unknown condition)."))
            if condition is not None and status not in STATUSES:
                issues.append((f"{where}.status", "Say whether the diagnosis is provisional "
                               "or confirmed."))
            if condition is None:
                status = None
    referrals: list[ReferralDecision] = []
    given = data.get("referrals") or {}
    if not isinstance(given, Mapping):
        issues.append((f"{prefix}.referrals", "Expected one decision per service."))
        given = {}
    for service, decision in given.items():
        where = f"{prefix}.referrals.{service}"
        if service not in knowledge.services:
            issues.append((where, "Not a referral this service knows (choose from the list)."))
            continue
        if not isinstance(decision, Mapping) or not isinstance(decision.get("order"), bool):
            issues.append((where, "Say whether to make this referral."))
            continue
        priority = decision.get("priority") or None
        if decision["order"] and priority not in PRIORITIES:
            issues.append((f"{where}.priority",
                           f"Choose a priority: {', '.join(PRIORITIES)}."))
        reason = _text(decision.get("reason"), MAX_REASON, f"{where}.reason", issues)
        referrals.append(ReferralDecision(service, decision["order"],
                                          priority if decision["order"] else None, reason))
    note = _text(data.get("note"), MAX_NOTE, f"{prefix}.note", issues)
    if issues:
        raise InputError(issues[0][1], issues=issues, status=422, code="invalid")
    return Impression(condition, status, tuple(referrals), note)


def read(stored: Mapping[str, Any] | None) -> Impression:
    """A signed impression as it was stored, unchecked: a frozen record shows what was
    signed even after a knowledge release renamed or retired a code."""
    if not stored:
        return NONE
    diagnosis = stored.get("diagnosis") or {}
    return Impression(diagnosis.get("condition"), diagnosis.get("status"), tuple(
        ReferralDecision(service, bool(d.get("order")), d.get("priority"), d.get("reason"))
        for service, d in (stored.get("referrals") or {}).items()), stored.get("note"))


def _text(value: Any, limit: int, where: str, issues: list[tuple[str, str]]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        issues.append((where, "Expected text."))
        return None
    value = value.strip()
    if len(value) > limit:
        issues.append((where, f"At most {limit} characters (this has {len(value)})."))
    return value or None


def referral_outcomes(knowledge: DecisionKnowledge, impression: Impression,
                      suggested: Sequence[tuple[str, str]]) -> list[Outcome]:
    """Each suggested referral (``(service, priority)``, in the assessment's order) and
    then each referral the clinician added, with how the clinician decided it."""
    result = []
    suggested_ids = {s for s, _ in suggested}
    for service, priority in suggested:
        d = impression.decision(service)
        if d is None:
            outcome, chosen, reason = "undecided", None, None
        elif not d.order:
            outcome, chosen, reason = "dropped", None, d.reason
        else:
            outcome = "accepted" if d.priority == priority else "changed"
            chosen, reason = d.priority, d.reason
        result.append(Outcome(service, _service(knowledge, service), outcome,
                              priority, chosen, reason))
    for d in impression.referrals:
        if d.service not in suggested_ids and d.order:
            result.append(Outcome(d.service, _service(knowledge, d.service), "added",
                                  None, d.priority, d.reason))
    return result


def _service(knowledge: DecisionKnowledge, service: str) -> str:
    known = knowledge.services.get(service)
    return known.display if known else f"{service} (no longer in the vocabulary)"


def missing_reasons(impression: Impression, suggested: Sequence[tuple[str, str]]
                    ) -> list[tuple[str, str]]:
    """What signing needs said: why a suggestion is dropped, why a referral is added."""
    suggested_ids = {s for s, _ in suggested}
    return [(f"impression.referrals.{d.service}.reason",
             "Say why you are not making this suggested referral." if d.service in suggested_ids
             else "Say why you are adding this referral.")
            for d in impression.referrals
            if not d.reason and ((d.service in suggested_ids and not d.order)
                                 or (d.service not in suggested_ids and d.order))]


def diagnosis_outcome(impression: Impression, suggested: Sequence[str]) -> str:
    """How the working diagnosis reads against the suggested conditions (rank order)."""
    if impression.condition is None:
        return "none"
    if suggested and impression.condition == suggested[0]:
        return "accepted"
    return "other-suggestion" if impression.condition in suggested else "changed"


def signed(knowledge: DecisionKnowledge, impression: Impression,
           suggested_referrals: Sequence[tuple[str, str]],
           suggested_conditions: Sequence[str]) -> dict[str, Any]:
    """What a revision keeps: the decision and how it read against the suggestions at
    the signature (``outcomes``), so the record and the decisions report never depend
    on a later knowledge release re-ranking the same answers. Kept also when nothing
    was decided: every suggestion then reads "undecided"."""
    return {**impression.as_json(), "outcomes": {
        "diagnosis": diagnosis_outcome(impression, suggested_conditions),
        "suggested_conditions": list(suggested_conditions),
        "referrals": [{"service": o.service, "outcome": o.outcome,
                       "suggested_priority": o.suggested_priority, "priority": o.priority,
                       "reason": o.reason}
                      for o in referral_outcomes(knowledge, impression, suggested_referrals)]}}


def orders(impression: Impression) -> list[ReferralDecision]:
    """The referrals the clinician makes (sent to the EHR as orders)."""
    return [d for d in impression.referrals if d.order]


#: How each outcome reads on the record and the summary.
OUTCOME_WORDS = {"accepted": "made as suggested", "changed": "made, priority changed",
                 "dropped": "not made", "added": "added (not suggested)",
                 "undecided": "no decision recorded"}
DIAGNOSIS_WORDS = {"accepted": "the first suggestion",
                   "other-suggestion": "another of the suggestions",
                   "changed": "not among the suggestions"}
#: What the record says when the clinician signed without an impression.
NOT_RECORDED = "No impression recorded by the clinician."


def view(knowledge: DecisionKnowledge, impression: Impression,
         assessment: Mapping[str, Any],
         outcomes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the record page and the summary print under "Clinician's impression": in
    words (displays, never ids). ``outcomes``: how a signed revision read against the
    suggestions at its signature (``signed``), used as frozen; without them (a draft)
    the decision is read against the assessment's JSON now."""
    if outcomes:
        diagnosis_read = outcomes.get("diagnosis", "none")
        read = [Outcome(r["service"], _service(knowledge, r["service"]), r["outcome"],
                        r.get("suggested_priority"), r.get("priority"), r.get("reason"))
                for r in outcomes.get("referrals", [])]
    else:
        suggested = [(r["service"], r["priority"]) for r in assessment["referrals"]]
        conditions = [c["condition"] for c in assessment["differential"] if c["suggested"]]
        diagnosis_read = diagnosis_outcome(impression, conditions)
        read = referral_outcomes(knowledge, impression, suggested)
    diagnosis = None
    if impression.condition is not None:
        known = {c.id: c.display for c in knowledge.conditions}
        display = known.get(impression.condition,
                            f"{impression.condition} (no longer in the vocabulary)")
        diagnosis = {"display": display, "status": impression.status,
                     "outcome": DIAGNOSIS_WORDS.get(diagnosis_read, diagnosis_read)}
    referrals = [{"display": o.display, "outcome": o.outcome,
                  "words": OUTCOME_WORDS[o.outcome], "priority": o.priority,
                  "suggested_priority": o.suggested_priority, "reason": o.reason}
                 for o in read]
    return {"recorded": not impression.empty, "diagnosis": diagnosis,
            "referrals": referrals, "note": impression.note, "not_recorded": NOT_RECORDED}
