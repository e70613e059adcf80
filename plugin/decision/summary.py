"""The Assessment as a readable clinician summary (CLI ``--format text``).

Same content and order as the JSON: emergencies first, then the differential with
the findings for and against, then referrals, caveats and the suggestion notice.
"""
from __future__ import annotations

from .assessment import Assessment, Evidence

_URGENCY = {"emergency": "EMERGENCY (same day)", "urgent": "URGENT (within days)",
            "routine": "Routine"}


def render(assessment: Assessment) -> str:
    lines = [f"Urgency: {_URGENCY[assessment.urgency]}"]
    for flag in assessment.red_flags:
        lines.append(f"  RED FLAG - {flag.definition.display}: "
                     f"{', '.join(f.display for f in flag.findings)}")
        lines.append(f"    {flag.definition.action}")
    lines.append("")
    lines.append("Differential (ranked):")
    if not assessment.differential:
        lines.append("  No condition is supported by the recorded findings.")
    for c in assessment.differential:
        lines.append(f"  {c.rank}. {c.condition.display} - likelihood {c.likelihood} "
                     f"(score {c.score:g}, confidence {c.confidence})")
        lines += _evidence("for", c.for_) + _evidence("against", c.against)
        if c.ranking_note:
            lines.append(f"     ranking: {c.ranking_note}")
        if c.missing_tests:
            lines.append(f"     not assessed: {'; '.join(c.missing_tests)}")
    if assessment.factors:
        lines.append("")
        lines.append("Contributing factors:")
        lines += [f"  - {f.definition.display}: {f.definition.note}" for f in assessment.factors]
    lines.append("")
    lines.append("Referrals:")
    if not assessment.referrals:
        lines.append("  None suggested.")
    for r in assessment.referrals:
        lines.append(f"  - {r.service.display} [{r.priority}]: {r.reason} Timing: {r.timing}")
        lines += [f"      focus: {f.focus}" for f in r.focus]
    if assessment.caveats:
        lines.append("")
        lines.append("Caveats:")
        lines += [f"  - {c.text}" for c in assessment.caveats]
    lines.append("")
    lines.append(assessment.disclaimer)
    lines.append(f"Knowledge version {assessment.knowledge_version}.")
    return "\n".join(lines) + "\n"


def _evidence(label: str, items: tuple[Evidence, ...]) -> list[str]:
    counted = [e for e in items if e.weight]  # the rest counted with one of these
    if not counted:
        return []
    shown = "; ".join(f"{e.label}"
                      + (f" ({', '.join(e.finding.sides)})" if e.finding.sides else "")
                      + f" [{e.basis}]" for e in counted)
    return [f"     {label}: {shown}"]
