"""What an outcome-measure score means: its band and whether a change matters.

Why: a LEFS of 52 means little to a reader; "+12 since 3 March 2026: a meaningful
improvement" is what a clinician needs, and the thresholds behind it (risk bands, the
minimal clinically important difference) are published facts with sources, so they live
as data in ``mappings/outcomes/interpretation.json`` and are checked at start-up. The
function here is pure so that ``$extract`` and, later, the review and summary say the
same words for the same numbers.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from ..errors import KnowledgeError


@dataclass(frozen=True)
class Band:
    code: str
    text: str
    #: score linkId -> (min, max), either None when open.
    when: Mapping[str, tuple[Decimal | None, Decimal | None]]


@dataclass(frozen=True)
class Meaning:
    """The interpretation rules of one score item."""

    link_id: str
    label: str
    higher_is_better: bool = True
    mcid: Decimal | None = None
    mcid_source: str | None = None
    bands: tuple[Band, ...] = ()
    bands_source: str | None = None


@dataclass(frozen=True)
class Interpretation:
    band: Band | None
    change: Decimal | None
    #: True/False when there is an earlier score and an MCID; None otherwise.
    meaningful: bool | None
    text: str


def parse(data: Any, *, source: str) -> Mapping[str, Meaning]:
    """Read and check the interpretation file; a band or MCID without source stops start-up."""
    if not isinstance(data, Mapping) or not isinstance(data.get("scores"), Mapping):
        raise KnowledgeError(source, "scores", "expected an object of score linkIds")
    meanings = {}
    for link_id, entry in data["scores"].items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("label"), str):
            raise KnowledgeError(source, link_id, "needs a label")
        mcid = entry.get("mcid")
        if mcid is not None and (isinstance(mcid, bool) or not isinstance(mcid, (int, float))
                                 or mcid <= 0):
            raise KnowledgeError(source, f"{link_id}.mcid", "must be a positive number")
        if mcid is not None and not _text(entry.get("mcid_source")):
            raise KnowledgeError(source, f"{link_id}.mcid_source", "an MCID needs its source")
        bands = tuple(_band(b, source, f"{link_id}.bands[{n}]")
                      for n, b in enumerate(entry.get("bands") or []))
        if bands and not _text(entry.get("bands_source")):
            raise KnowledgeError(source, f"{link_id}.bands_source", "bands need their source")
        if mcid is None and not bands:
            raise KnowledgeError(source, link_id, "neither bands nor an MCID: nothing to say")
        meanings[link_id] = Meaning(
            link_id=link_id, label=entry["label"],
            higher_is_better=entry.get("higher_is_better", True) is not False,
            mcid=None if mcid is None else Decimal(str(mcid)), mcid_source=entry.get("mcid_source"),
            bands=bands, bands_source=entry.get("bands_source"))
    return MappingProxyType(meanings)


def interpret(meaning: Meaning, scores: Mapping[str, Any], *,
              earlier: tuple[dt.date, Any] | None = None) -> Interpretation:
    """The band of ``scores`` (the instrument's score values by linkId) and, given an
    earlier value of the same score for the same patient and its date, the change and
    whether it reaches the MCID (a change equal to the MCID counts as meaningful)."""
    band = next((b for b in meaning.bands if _holds(b, scores)), None)
    value = scores.get(meaning.link_id)
    parts = []
    if band is not None:
        parts.append(f"{meaning.label}: {band.text}")
    change = meaningful = None
    number = _number(value)
    if earlier is not None and number is not None and _number(earlier[1]) is not None:
        change = number - _number(earlier[1])
        when = f"{earlier[0].day} {earlier[0]:%B %Y}"
        head = f"{meaning.label} {_signed(change)} since {when}"
        if meaning.mcid is not None:
            meaningful = abs(change) >= meaning.mcid
            if not meaningful:
                head += f": less than the minimal important change ({_plain(meaning.mcid)})"
            else:
                better = (change > 0) == meaning.higher_is_better
                head += f": a meaningful {'improvement' if better else 'deterioration'}"
        parts.append(head)
    elif band is None and number is not None:
        parts.append(f"{meaning.label} {_plain(number)}")
    return Interpretation(band=band, change=change, meaningful=meaningful, text="; ".join(parts))


def _band(data: Any, source: str, where: str) -> Band:
    if not isinstance(data, Mapping) or not _text(data.get("code")) or not _text(data.get("text")) \
            or not isinstance(data.get("when"), Mapping) or not data["when"]:
        raise KnowledgeError(source, where, "a band needs code, text and when")
    when = {}
    for link_id, bounds in data["when"].items():
        if not isinstance(bounds, Mapping) or not set(bounds) <= {"min", "max"} or not bounds:
            raise KnowledgeError(source, f"{where}.when.{link_id}", "takes min and/or max")
        when[link_id] = tuple(None if bounds.get(k) is None else Decimal(str(bounds[k]))
                              for k in ("min", "max"))
    return Band(code=data["code"], text=data["text"], when=MappingProxyType(when))


def _holds(band: Band, scores: Mapping[str, Any]) -> bool:
    for link_id, (low, high) in band.when.items():
        value = _number(scores.get(link_id))
        if value is None or (low is not None and value < low) or \
                (high is not None and value > high):
            return False
    return True


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    return Decimal(str(value))


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _signed(value: Decimal) -> str:
    return ("+" if value > 0 else "") + _plain(value)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
