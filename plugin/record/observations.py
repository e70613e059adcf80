"""A signed revision's Observations as the FHIR API serves them: made once, when the
revision is signed, and stored with it (``Store.sign(observations=...)``); the API's
search and read only read what was stored.

They are the Observations of the record Bundle the EHR receives, made by the same code
(``pipeline.exam_from_input`` then ``bundle.extraction``) from the response as signed,
with the Bundle's ``urn:uuid`` references made resolvable here
(``QuestionnaireResponse/<exam>``, ``Patient/<id>``), our id and meta (``versionId`` the
revision number, ``lastUpdated`` the signature).

An Observation's id is ``<exam id>-<16 hex digits of the urn:uuid it has in the
Bundle>`` (a uuid5 of its identifier ``<exam id>/<linkId>[/<code>]``): the exam id finds
the record, the rest names the finding, so the id stays the same across amendments for
as long as the finding is recorded.

Made at signature, they never change afterwards: a later change of the knowledge
(mappings, codes) or a mapping that no longer loads cannot alter what was signed and
served. Revisions signed before Observations were stored get theirs from ``backfill``,
run after every schema upgrade, with the knowledge loaded then (what the API derived and
served for them until then).
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from .. import __version__
from ..adapters import store as store_mod
from ..adapters.store import ObservationRecord
from ..core import bundle, prom_extract
from ..errors import PluginError
from . import pipeline

log = logging.getLogger(__name__)

QR = "QuestionnaireResponse"
OBS = "Observation"


def of_revision(kb: Any, *, exam_id: str, patient_id: str, number: int,
                response: Mapping[str, Any], signed_at: dt.datetime,
                proms: Sequence[pipeline.Prom] = ()) -> list[ObservationRecord]:
    """The Observations of revision ``number`` of the exam, signed as ``response`` at
    ``signed_at``, as served here (in form order), then the survey Observations of the
    visit's outcome measures ``proms`` (their ``derivedFrom`` names the response by its
    identifier: this service does not serve a PROM's response)."""
    signed_at = signed_at.astimezone(dt.timezone.utc)
    exam = pipeline.exam_from_input(kb, dict(response), now=signed_at)
    more = prom_extract.visit_entries(
        proms, exam_id=exam_id, subject={"reference": f"Patient/{patient_id}"},
        encounter=exam.context.encounter, author=exam.context.author,
        meanings=kb.interpretations)
    record = bundle.extraction(exam, kb.mappings_for(exam.form), plugin_version=__version__,
                               recorded=signed_at.isoformat(timespec="seconds"), more=more)
    first = record["entry"][0]  # the exam's own response
    local: dict[str, Any] = {first["fullUrl"]: f"{QR}/{exam_id}"}
    local.update({e["fullUrl"]: {"type": QR, "identifier": e["resource"]["identifier"]}
                  for e in more if e["resource"]["resourceType"] == QR})
    found = [e for e in record["entry"] if e["resource"]["resourceType"] == OBS]
    ids = {e["fullUrl"]: observation_id(exam_id, e["fullUrl"]) for e in found}
    local.update({url: f"{OBS}/{id_}" for url, id_ in ids.items()})
    result = []
    for entry in found:
        resource = _localised(entry["resource"], local)
        if isinstance(resource.get("subject"), Mapping):
            resource["subject"] = {**resource["subject"], "reference": f"Patient/{patient_id}"}
        id_ = ids[entry["fullUrl"]]
        meta = resource.get("meta")
        meta = {**(meta if isinstance(meta, Mapping) else {}), "versionId": str(number),
                "lastUpdated": _instant(signed_at)}
        served = {"resourceType": OBS, "id": id_, "meta": meta,
                  **{k: v for k, v in resource.items() if k not in ("resourceType", "id",
                                                                   "meta")}}
        result.append(ObservationRecord(
            id=id_, exam_id=exam_id, revision=number, patient_id=patient_id,
            date=_effective(served, signed_at), resource=served, codes=_codes(served)))
    return result


def backfill(store: store_mod.Store, kb: Any) -> int:
    """Store the Observations of every signed revision that has none yet (signed before
    they were kept), each in its own short transaction; returns how many revisions were
    filled. Safe to run by several processes at once (a revision another one filled is
    skipped) and again (nothing left to do). A revision whose response no longer reads
    with today's knowledge is logged by exam id and left for a later run."""
    filled = 0
    for exam_id, number in store.revisions_without_observations():
        try:
            revision = store.revision(exam_id, number)
            exam = store.exam(exam_id)
            records = of_revision(kb, exam_id=exam_id, patient_id=exam.patient_id,
                                  number=number, response=revision.response,
                                  signed_at=revision.signed_at)
        except PluginError as error:
            log.warning("exam %s revision %d: Observations not stored (%s)", exam_id, number,
                        type(error).__name__)
            continue
        filled += store.add_observations(exam_id, number, records)
    if filled:
        log.info("stored the Observations of %d revision(s) signed before they were kept",
                 filled)
    return filled


def observation_id(exam_id: str, full_url: str) -> str:
    return f"{exam_id}-{full_url.removeprefix('urn:uuid:').replace('-', '')[:16]}"


def _localised(value: Any, local: Mapping[str, Any]) -> Any:
    """``value`` with every reference to a Bundle entry served here rewritten to its
    address on this server, and one to an entry not served here (a PROM's response) to
    a logical reference (its identifier)."""
    if isinstance(value, Mapping):
        target = local.get(value.get("reference"))  # type: ignore[arg-type]
        if isinstance(target, Mapping):
            return dict(target)
        return {k: (local.get(v, v) if k == "reference" and isinstance(v, str)
                    else _localised(v, local)) for k, v in value.items()}
    if isinstance(value, list):
        return [_localised(v, local) for v in value]
    return value


def _effective(resource: Mapping[str, Any], signed_at: dt.datetime) -> dt.datetime:
    """The Observation's effective time (the signature's, to the second), for ``date``
    search; the signature time when it has none with a zone."""
    value = resource.get("effectiveDateTime")
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return signed_at
    return moment.astimezone(dt.timezone.utc) if moment.utcoffset() is not None else signed_at


def _codes(resource: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Every coding of ``code`` as (system or "", code), for token search."""
    codings = (resource.get("code") or {}).get("coding") or []
    return tuple(dict.fromkeys((c.get("system") or "", c["code"]) for c in codings
                               if isinstance(c.get("code"), str)))


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")
