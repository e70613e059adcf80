"""The review page's "Your impression and plan" panel: its form fields to the stored
JSON (``decision/impression``) and back to rows to show.

Field names: ``diagnosis.condition``, ``diagnosis.status``; per referral service
``referral.<service>.order`` (yes | no), ``.priority``, ``.reason``; ``add.service``,
``add.priority``, ``add.reason`` for one referral not suggested; ``note``. Checking is
``impression.load``'s (one home): this module only reshapes.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..decision.catalogue import PRIORITIES, DecisionKnowledge


def from_form(form: Mapping[str, str], suggested: Mapping[str, str]) -> dict[str, Any]:
    """The posted fields as the impression JSON (unchecked). A suggested referral's
    row answered "yes" keeps the chosen priority (the suggested one if none); an added
    referral's row answered "no" is removed (there is nothing to decline)."""
    result: dict[str, Any] = {}
    condition = (form.get("diagnosis.condition") or "").strip()
    if condition:
        result["diagnosis"] = {"condition": condition,
                               "status": form.get("diagnosis.status") or None}
    referrals: dict[str, Any] = {}
    services = sorted({k.split(".")[1] for k in form
                       if k.startswith("referral.") and k.count(".") >= 2})
    for service in services:
        order = form.get(f"referral.{service}.order")
        if order not in ("yes", "no"):
            continue  # undecided
        if order == "no" and service not in suggested:
            continue
        decision: dict[str, Any] = {"order": order == "yes"}
        if order == "yes":
            decision["priority"] = (form.get(f"referral.{service}.priority")
                                    or suggested.get(service))
        reason = (form.get(f"referral.{service}.reason") or "").strip()
        if reason:
            decision["reason"] = reason
        referrals[service] = decision
    added = (form.get("add.service") or "").strip()
    if added:
        decision = {"order": True, "priority": form.get("add.priority") or None}
        reason = (form.get("add.reason") or "").strip()
        if reason:
            decision["reason"] = reason
        referrals[added] = decision
    if referrals:
        result["referrals"] = referrals
    note = form.get("note") or ""
    if note.strip():
        result["note"] = note
    return result


def panel(knowledge: DecisionKnowledge, stored: Mapping[str, Any] | None,
          assessment: Mapping[str, Any],
          errors: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What the panel template needs: the conditions (suggested first), one row per
    suggested or added referral with the clinician's choice, the services left to add,
    the note, and the field errors keyed by field name."""
    stored = stored or {}
    chosen = stored.get("referrals") or {}
    suggested = [c["condition"] for c in assessment["differential"] if c["suggested"]]
    conditions = [(c.id, c.display, c.id in suggested) for c in knowledge.conditions]
    conditions.sort(key=lambda c: (not c[2], suggested.index(c[0]) if c[2] else 0))
    rows = []
    for r in assessment["referrals"]:
        mine = chosen.get(r["service"]) or {}
        rows.append({"service": r["service"], "display": r["display"], "suggested": True,
                     "suggested_priority": r["priority"], "why": r["reason"],
                     "order": mine.get("order"), "priority": mine.get("priority") or
                     r["priority"], "reason": mine.get("reason") or ""})
    shown = {r["service"] for r in rows}
    for service, mine in chosen.items():
        if service not in shown and service in knowledge.services and mine.get("order"):
            rows.append({"service": service, "display": knowledge.services[service].display,
                         "suggested": False, "suggested_priority": None, "why": None,
                         "order": True, "priority": mine.get("priority") or "routine",
                         "reason": mine.get("reason") or ""})
    shown |= {r["service"] for r in rows}
    diagnosis = stored.get("diagnosis") or {}
    return {"conditions": conditions, "condition": diagnosis.get("condition") or "",
            "status": diagnosis.get("status") or "", "rows": rows,
            "addable": [(s.id, s.display) for s in knowledge.services.values()
                        if s.id not in shown],
            "priorities": PRIORITIES, "note": stored.get("note") or "",
            "errors": dict(errors or {})}


def field_errors(issues: Any) -> dict[str, str]:
    """``impression.load``'s issues (``impression.referrals.<service>.reason``) keyed by
    the form's field names (``referral.<service>.reason``)."""
    result: dict[str, str] = {}
    for expression, message in issues:
        name = (expression or "").removeprefix("impression.")
        name = "referral." + name[len("referrals."):] if name.startswith("referrals.") else name
        result.setdefault(name, message)
    return result
