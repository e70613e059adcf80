"""A visit's outcome-measure scores as a clinician reads them: the instrument, each
score, its band, the change since the patient's earlier score and whether it reaches
the minimal clinically important difference (with the MCID's source), and the
instrument's copyright notice.

Why one pure function: the tablet review, the signed record, its revisions and the
clinician summary must say the same words for the same numbers, and a signed record
must keep the words it was signed with. ``results`` is made once at signature and
frozen (``record.freeze``) as ``as_json``; the pages and the PDF print what was
frozen. The meaning itself (bands, MCIDs, sources) is data (``core.interpretation``).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from . import datetimes, interpretation, prom_extract, scoring

#: An earlier value of a score for the same patient: (date, value) by score linkId.
Earlier = Mapping[str, tuple[dt.date, Any]]


@dataclass(frozen=True)
class ScoreLine:
    """One score of one response, as shown."""

    link_id: str
    label: str
    value: str
    #: the band in words ("high risk"), when the score has bands
    band: str | None = None
    band_code: str | None = None
    #: the change since the earlier score, in words ("LEFS +12 since 3 March 2026: a
    #: meaningful improvement"), when there is one
    change: str | None = None
    #: True/False when there is an earlier score and an MCID, else None
    meaningful: bool | None = None
    #: where the band or the MCID comes from (printed beside the words)
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromResult:
    """One completed outcome measure of the visit, as shown."""

    instrument_id: str
    title: str
    authored: str | None
    copyright: str | None
    scores: tuple[ScoreLine, ...]


def results(instruments: Sequence[tuple[scoring.Instrument, Mapping[str, Any]]],
            meanings: Mapping[str, interpretation.Meaning], *,
            earlier: Earlier | None = None, time_zone: str = "UTC") -> list[PromResult]:
    """The display lines of scored, finished responses (``prom_extract.checked``), each
    with its instrument, in the visit's order; ``earlier`` the patient's earlier values
    of the same scores (from earlier visits), for the change. ``authored`` is shown as
    the day it was answered at the clinic (``time_zone``)."""
    earlier = earlier or {}
    shown = []
    for instrument, scored in instruments:
        values = prom_extract.score_values(instrument, scored)
        plain = {k: v for k, v in values.items() if not isinstance(v, Mapping)}
        lines = []
        for calc in instrument.calculations:
            if calc.link_id not in values:
                continue  # not scored (too few answers): nothing to show
            value = values[calc.link_id]
            item = next(i for i in instrument.resource["item"] if i.get("linkId") == calc.link_id)
            meaning = meanings.get(calc.link_id)
            line = ScoreLine(link_id=calc.link_id, label=item.get("text", calc.link_id),
                             value=_shown(value))
            if meaning is not None:
                said = interpretation.interpret(meaning, {**plain, calc.link_id: value},
                                                earlier=earlier.get(calc.link_id))
                sources = []
                if said.band is not None and meaning.bands_source:
                    sources.append(meaning.bands_source)
                change = None
                if said.change is not None:
                    change = said.text.split("; ")[-1]
                    if said.meaningful is not None and meaning.mcid_source:
                        sources.append(meaning.mcid_source)
                line = ScoreLine(link_id=line.link_id, label=line.label, value=line.value,
                                 band=said.band.text if said.band else None,
                                 band_code=said.band.code if said.band else None,
                                 change=change, meaningful=said.meaningful,
                                 sources=tuple(sources))
            lines.append(line)
        shown.append(PromResult(instrument_id=instrument.id, title=instrument.title,
                                authored=_day(scored.get("authored"), time_zone),
                                copyright=instrument.resource.get("copyright"),
                                scores=tuple(lines)))
    return shown


def _day(authored: Any, time_zone: str) -> str | None:
    """The clinic's calendar day (ISO) of an ``authored`` instant; a bare date as it is."""
    if not isinstance(authored, str):
        return None
    if not datetimes.is_instant(authored):
        return authored[:10]
    return datetimes.local_date(datetimes.parse_aware(authored), time_zone)


def bands(shown: Sequence[PromResult]) -> dict[str, str]:
    """Each banded score's band code by score linkId (the decision engine's PROM facts:
    ``decision.facts``); a later response of the same instrument wins."""
    return {line.link_id: line.band_code for result in shown for line in result.scores
            if line.band_code}


def as_json(shown: Sequence[PromResult]) -> list[dict[str, Any]]:
    """The frozen form (``record.freeze.Frozen.proms``)."""
    return [{**asdict(r), "scores": [{**asdict(s), "sources": list(s.sources)}
                                     for s in r.scores]} for r in shown]


def from_json(data: Sequence[Mapping[str, Any]]) -> list[PromResult]:
    return [PromResult(instrument_id=r["instrument_id"], title=r["title"],
                       authored=r.get("authored"), copyright=r.get("copyright"),
                       scores=tuple(ScoreLine(**{**s, "sources": tuple(s.get("sources") or ())})
                                    for s in r["scores"]))
            for r in data]


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):  # a coded score: its words
        return str(value.get("display") or value.get("code"))
    if isinstance(value, float):
        return format(Decimal(str(value)).normalize(), "f")
    return str(value)
