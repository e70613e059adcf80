"""How clinicians decide on the suggestions: counts for the ``report decisions`` CLI.

Reads only what each signed revision froze (``impression.signed``'s ``outcomes``): no
patient, no exam id, no date, no name. Free-text reasons can identify a person (a
clinician may type anything), so they are counted, and listed only when asked for.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .catalogue import DecisionKnowledge
from .impression import DIAGNOSIS_OUTCOMES, OUTCOMES


def build(knowledge: DecisionKnowledge, signed: Iterable[Mapping[str, Any] | None], *,
          with_reasons: bool = False) -> dict[str, Any]:
    """One count per record (its latest revision): for each first-ranked suggested
    condition, what the clinician's working diagnosis was; for each referral service,
    how often it was accepted, changed, dropped, added or left undecided, with how many
    decisions gave a reason (and the reasons themselves with ``with_reasons``)."""
    records = with_impression = 0
    diagnoses: dict[str, Counter[str]] = {}
    referrals: dict[str, Counter[str]] = {}
    reasons: dict[str, Counter[str]] = {}
    for stored in signed:
        records += 1
        outcomes = (stored or {}).get("outcomes")
        if not outcomes:  # signed before the impression existed: nothing was asked
            continue
        if any(k in stored for k in ("diagnosis", "referrals", "note")):
            with_impression += 1
        top = (outcomes.get("suggested_conditions") or ["(none suggested)"])[0]
        diagnoses.setdefault(top, Counter())[outcomes.get("diagnosis", "none")] += 1
        for r in outcomes.get("referrals", []):
            counts = referrals.setdefault(r["service"], Counter())
            counts[r["outcome"]] += 1
            if r.get("reason"):
                counts["with_reason"] += 1
                reasons.setdefault(r["service"], Counter())[r["reason"]] += 1
    displays = {c.id: c.display for c in knowledge.conditions}
    result: dict[str, Any] = {
        "records": records, "with_impression": with_impression,
        "diagnosis": {top: {"display": displays.get(top, top),
                            **{o: counts[o] for o in DIAGNOSIS_OUTCOMES}}
                      for top, counts in sorted(diagnoses.items())},
        "referrals": {}}
    for service, counts in sorted(referrals.items()):
        known = knowledge.services.get(service)
        entry: dict[str, Any] = {"display": known.display if known else service,
                                 **{o: counts[o] for o in OUTCOMES},
                                 "with_reason": counts["with_reason"]}
        if with_reasons:
            entry["reasons"] = dict(reasons.get(service, Counter()).most_common())
        result["referrals"][service] = entry
    return result


def text(report: Mapping[str, Any]) -> str:
    """The report for a person at a terminal."""
    lines = [f"Signed records: {report['records']} "
             f"(with the clinician's impression: {report['with_impression']})", "",
             "Working diagnosis, by the first suggested condition:"]
    for entry in report["diagnosis"].values():
        lines.append(f"  {entry['display']}: " + ", ".join(
            f"{o} {entry[o]}" for o in DIAGNOSIS_OUTCOMES))
    lines += ["", "Referrals:"]
    for entry in report["referrals"].values():
        lines.append(f"  {entry['display']}: " + ", ".join(
            f"{o} {entry[o]}" for o in OUTCOMES) + f" (with a reason: {entry['with_reason']})")
        for reason, n in entry.get("reasons", {}).items():
            lines.append(f"    {n} x {reason}")
    return "\n".join(lines) + "\n"
