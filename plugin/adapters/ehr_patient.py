"""The EHR's own Patient for a record whose patient was typed on the tablet.

Most EHRs find a patient's records by a literal reference (``Observation?patient=<id>``)
and some refuse anything else, so the record is delivered naming the EHR's Patient.
A patient who came from the EHR by a SMART launch already does (the Bundle is built
with it). For the others the delivery looks the patient up
(``GET [base]/Patient?identifier=<PATIENT_IDENTIFIER_SYSTEM>|<value>``: only with the
organisation's identifier system, never a bare value that could be another
organisation's number) and confirms the birth date:

- exactly one match with the same birth date: that Patient;
- none, several, or a birth date that disagrees: the delivery waits (``Result.hold``)
  with the reason and the EHR's candidates, until a person picks or confirms the EHR's
  patient on the record page (``Facts.chosen``; read back first: an id the EHR does
  not know waits for them again). Never a guess on a name.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .ehr_capability import searchable
from .ehr_http import Result, exchange, search

__all__ = ["Facts", "find", "literal", "needed"]

#: Patient fields kept of each candidate for the person who chooses (no more).
MAX_CANDIDATES = 10
#: Where a patient is named in the record's resources.
PATIENT_FIELDS = ("subject", "patient")


@dataclass(frozen=True)
class Facts:
    """What the plugin knows of the record's patient: the identifier in the
    organisation's system (None: no system set, or the patient has none), the birth
    date, and the EHR Patient a person chose (``Patient/<id>``), if any."""

    identifier: tuple[str, str] | None
    birth_date: str | None
    chosen: str | None = None


def needed(bundle: Mapping[str, Any]) -> bool:
    """Whether some resource names its patient without a literal reference."""
    return any(_logical(e["resource"]) for e in bundle.get("entry") or [])


def literal(bundle: Mapping[str, Any], reference: str) -> dict[str, Any]:
    """The Bundle with every patient named without a literal reference now naming
    ``reference`` (identifier and display kept)."""
    entries = []
    for entry in bundle.get("entry") or []:
        resource = dict(entry["resource"])
        for field in PATIENT_FIELDS:
            value = resource.get(field)
            if isinstance(value, Mapping) and "reference" not in value:
                resource[field] = {"reference": reference, **value}
        entries.append({**entry, "resource": resource})
    return {**bundle, "entry": entries}


def find(base_url: str, facts: Facts, statement: Mapping[str, Any] | None, *,
         token: str | None, timeout: float) -> str | Result:
    """``Patient/<id>`` of the EHR's patient, or a Result: a failure to retry, or a
    ``hold`` saying what a person must confirm."""
    base = base_url.rstrip("/")
    if facts.chosen:
        return _confirmed(base, facts.chosen, token=token, timeout=timeout)
    if facts.identifier is None:
        return _hold("The patient has no identifier in the organisation's system "
                     "(PATIENT_IDENTIFIER_SYSTEM), so the EHR's patient cannot be looked "
                     "up: confirm it by its EHR id.")
    if not searchable(statement, "Patient", "identifier"):
        return _hold("The EHR does not offer a search of patients by identifier: confirm "
                     "the patient by its EHR id.")
    system, value = facts.identifier
    url = f"{base}/Patient?identifier={quote(system, safe='')}|{quote(value, safe='')}"
    answer = search(url, "Patient", token=token, timeout=timeout,
                    what="looking up the patient in the EHR")
    if isinstance(answer, Result):
        return answer
    found = [p for p in answer[0] if isinstance(p.get("id"), str)]
    candidates = tuple(_candidate(p) for p in found[:MAX_CANDIDATES])
    if not found:
        return _hold("The EHR has no patient with this identifier: confirm the patient "
                     "by its EHR id.")
    if len(found) > 1:
        return _hold(f"The EHR has {len(found)} patients with this identifier: choose "
                     "the right one.", candidates)
    if not facts.birth_date or found[0].get("birthDate") != facts.birth_date:
        return _hold("The EHR's patient with this identifier has another birth date: "
                     "confirm it is the same person, or name the right one.", candidates)
    return f"Patient/{found[0]['id']}"


def _confirmed(base: str, chosen: str, *, token: str | None, timeout: float) -> str | Result:
    """The Patient a person chose, once the EHR shows it exists (a mistyped id waits
    for them again rather than fail the record)."""
    answer = exchange("GET", f"{base}/{chosen}", None, token=token, timeout=timeout,
                      what="reading the chosen EHR patient")
    if isinstance(answer, Result):
        if answer.status in (404, 410):
            return _hold(f"The EHR has no {chosen}: choose the patient again.")
        return answer
    return chosen


def _hold(reason: str, candidates: tuple[Mapping[str, Any], ...] = ()) -> Result:
    return Result(delivered=False, retryable=False, hold=reason, error=reason,
                  candidates=candidates)


def _candidate(patient: Mapping[str, Any]) -> dict[str, Any]:
    """What a person needs to tell the EHR's patients apart (and no more)."""
    names = patient.get("name") if isinstance(patient.get("name"), list) else []
    name = names[0] if names and isinstance(names[0], Mapping) else {}
    given = " ".join(g for g in name.get("given") or [] if isinstance(g, str))
    display = " ".join(p for p in (given, name.get("family") or "") if p) \
        or name.get("text") or ""
    return {"id": patient["id"], "name": str(display)[:200],
            "birthDate": str(patient.get("birthDate") or "")[:10]}


def _logical(resource: Mapping[str, Any]) -> bool:
    return any(isinstance(resource.get(f), Mapping) and "reference" not in resource[f]
               for f in PATIENT_FIELDS)
