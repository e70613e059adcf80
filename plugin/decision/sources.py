"""The sources an assessment cites, numbered as people read them.

Every surface that shows the assessment (the tablet's review and record pages, the
clinician summary PDF) prints the same numbered list, and each reason, red flag,
caveat, referral and physiotherapy focus points into it with ``[n]``: citations are
read on a touch screen or on paper, never hidden in a tooltip. Only what is printed is
numbered, so no listed source is cited by nothing: a condition's reasons are the lines
that counted (weight not 0), for the suggested conditions only.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .catalogue import Citation


@dataclass(frozen=True)
class Sources:
    """The numbered list, and the numbers for a list of citation ids."""

    listed: tuple[tuple[int, str], ...]  # (number, the source's text)
    numbers: Mapping[str, int]

    def cite(self, ids: Iterable[str]) -> str:
        """``[1, 4]`` for the given citation ids ('' when none)."""
        shown = list(dict.fromkeys(self.numbers[i] for i in ids))
        return f"[{', '.join(map(str, shown))}]" if shown else ""


def shown_evidence(lines: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The reasons a page prints: what counted (the rest counted once with one of them)."""
    return [e for e in lines if e["weight"]]


def numbered(assessment: Mapping[str, Any], citations: Mapping[str, Citation]) -> Sources:
    """Every source the printed ``assessment`` (its JSON contract) cites, numbered in
    order of first mention."""
    seen: dict[str, None] = {}

    def add(ids: Iterable[str]) -> None:
        for id_ in ids:
            seen.setdefault(id_, None)

    for flag in assessment["red_flags"]:
        add(flag["citations"])
    for caveat in assessment["caveats"]:
        add(caveat["citations"])
    for candidate in assessment["differential"]:
        if candidate["suggested"]:
            for evidence in shown_evidence((*candidate["for"], *candidate["against"])):
                add(evidence["citations"])
            add(candidate.get("ranking_citations") or ())  # why it ranks lower
    for referral in assessment["referrals"]:
        add(referral["citations"])
    for focus in assessment["pt_focus"]:
        add(focus["citations"])
    ids = [i for i in seen if i in citations]
    return Sources(tuple((n, citations[i].text) for n, i in enumerate(ids, 1)),
                   {i: n for n, i in enumerate(ids, 1)})
