"""The ``decision-support`` CodeSystem, built from the decision knowledge itself.

Conditions, red flags, referral services and contributing factors have one home (the
files in ``mappings/decision/``); this CodeSystem publishes them so that the codes in
emitted Conditions and ServiceRequests resolve at ``/fhir/CodeSystem/decision-support``.
"""
from __future__ import annotations

from typing import Any

from ..core import terminology as t
from .catalogue import DecisionKnowledge

ID = "decision-support"


def build(knowledge: DecisionKnowledge) -> dict[str, Any]:
    concepts: dict[str, dict[str, Any]] = {}

    def add(code: str, display: str, kind: str, definition: str) -> None:
        if code in concepts:  # e.g. avulsion: a condition and a red flag, one concept
            concepts[code]["property"].append({"code": "kind", "valueCode": kind})
            return
        concepts[code] = {"code": code, "display": display, "definition": definition,
                          "property": [{"code": "kind", "valueCode": kind}]}

    for c in knowledge.conditions:
        add(c.id, c.display, "condition", c.rationale)
    for r in knowledge.red_flags:
        add(r.id, r.display, "red-flag", r.rationale)
    for f in knowledge.factors:
        add(f.id, f.display, "contributing-factor", f.note)
    for s in knowledge.services.values():
        add(s.id, s.display, "service", f"Suggested {s.category}: {s.display}.")
    return {
        "resourceType": "CodeSystem", "id": ID, "url": t.DECISION_SUPPORT,
        "version": knowledge.version, "name": "DecisionSupport",
        "title": "Posterior thigh exam: decision support vocabulary",
        "status": "active", "experimental": False,
        "publisher": "Posterior thigh exam plugin",
        "description": "Conditions, red flags, contributing factors and referral services "
                       "the decision support suggests (the exam dictionary's decision "
                       "vocabulary). Standard codes are given alongside where verified.",
        "caseSensitive": True, "content": "complete", "count": len(concepts),
        "property": [{"code": "kind", "type": "code",
                      "description": "condition | red-flag | contributing-factor | service"}],
        "concept": list(concepts.values()),
    }
