"""A visit's completed outcome measures (PROMs) at signature: checked and scored again
on the server, and read against the patient's earlier scores.

Why here: the PROMs reach the signature as QuestionnaireResponse JSON (contract K1,
``record.proms.completed``); what the record keeps must not rest on a score a client
or an earlier step computed, so each is re-checked and re-scored with its instrument
(``core.prom_extract.checked``). The change since an earlier score needs the store (the
Observations of the patient's earlier signed visits), so it is a use-case step, not
the pure core's.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from ..adapters import store as store_mod
from ..core import datetimes, prom_extract, prom_results
from ..errors import InputError
from .pipeline import Prom

#: How many earlier values of one score are read to find the latest earlier visit's.
EARLIER_LOOKUP = 20


def checked(kb: Any, proms: Sequence[Mapping[str, Any]]) -> list[Prom]:
    """Each PROM with its instrument, re-checked and re-scored; InputError (422) naming
    the instrument when one is not a loaded instrument's, not finished or does not
    validate: the signature is refused and nothing is stored."""
    result = []
    for n, response in enumerate(proms):
        canonical = response.get("questionnaire") if isinstance(response, Mapping) else None
        instrument = kb.instrument_for(canonical) if isinstance(canonical, str) else None
        if instrument is None:
            raise InputError(f"Outcome measure {n + 1} names no loaded instrument "
                             f"({canonical!r}).", expression=f"proms[{n}].questionnaire",
                             status=422, code="not-found")
        try:
            scored = prom_extract.checked(instrument, response)
        except InputError as exc:
            message = exc.message if exc.message.startswith(instrument.title) \
                else f"{instrument.title}: {exc.message}"
            raise InputError(message,
                             expression=f"proms[{n}]", status=422,
                             code="business-rule") from exc
        result.append((instrument, scored))
    return result


def earlier(store: store_mod.Store, patient_id: str, exam_id: str,
            proms: Sequence[Prom], *, time_zone: str = "UTC") -> prom_results.Earlier:
    """The patient's latest earlier value of each score of ``proms``: from the stored
    Observations (current revisions) of their other signed visits, dated before this
    visit's response. A later amendment of this same exam is not "earlier"."""
    found: dict[str, tuple[dt.date, Any]] = {}
    for instrument, scored in proms:
        authored = _instant(scored.get("authored"))
        for calc in instrument.calculations:
            item = next(i for i in instrument.resource["item"] if i.get("linkId") == calc.link_id)
            coding = (item.get("code") or [{}])[0]
            if calc.link_id in found or not coding.get("code"):
                continue
            _, records = store.search_observations(
                patient_ids=[patient_id], codes=[[(coding.get("system"), coding["code"])]],
                sort="-date", limit=EARLIER_LOOKUP)
            for record in records:
                if record.exam_id == exam_id or (authored and record.date >= authored):
                    continue
                value = _value(record.resource)
                if value is not None:
                    found[calc.link_id] = (datetimes.local_day(record.date, time_zone), value)
                    break
    return found


def _value(resource: Mapping[str, Any]) -> Any:
    if "valueInteger" in resource:
        return resource["valueInteger"]
    if isinstance(resource.get("valueQuantity"), Mapping):
        return resource["valueQuantity"].get("value")
    return None


def _instant(value: Any) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None


def shown(store: store_mod.Store, kb: Any, exam: store_mod.ExamRecord,
          proms: Sequence[Mapping[str, Any]], *, time_zone: str = "UTC"
          ) -> tuple[list[Prom], list[prom_results.PromResult]]:
    """The visit's PROMs checked and scored, and their meaning as the review shows it
    (and the signature will freeze it): the change since the patient's earlier scores
    included, every date the clinic's (``time_zone``). InputError as ``checked``."""
    scored = checked(kb, proms)
    before = earlier(store, exam.patient_id, exam.id, scored, time_zone=time_zone)
    return scored, prom_results.results(scored, kb.interpretations, earlier=before,
                                        time_zone=time_zone)
