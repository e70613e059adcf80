"""The delivery profiles (setting ``EHR_PROFILE``) and what each sends of a record.

- ``"transaction"`` and ``"individual"``: every entry of the Bundle.
- ``"document-only"``: only the DocumentReferences (the rendered PDFs) and their
  Provenance. Many EHRs refuse the rest: Oracle Health (Cerner) Millennium accepts
  Observation creates only for vital signs and laboratory results, and
  QuestionnaireResponse only for social history, while clinical-note DocumentReferences
  with a PDF are what US Core "Writing Clinical Notes" asks every server to accept
  (fhir.md section 7.1).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DOCUMENT_ONLY_TYPES", "PROFILES", "SETTINGS", "for_profile", "keep"]

#: The profiles a delivery can go by; ``SETTINGS``: what ``EHR_PROFILE`` accepts.
PROFILES = ("transaction", "individual", "document-only")
SETTINGS = PROFILES + ("auto",)
DOCUMENT_ONLY_TYPES = ("DocumentReference", "Provenance")


def for_profile(bundle: Mapping[str, Any], profile: str) -> dict[str, Any]:
    """The Bundle as sent under ``profile`` (a ValueError for an unknown one)."""
    if profile not in PROFILES:
        raise ValueError(f"EHR_PROFILE must be one of {', '.join(PROFILES)}, not {profile!r}")
    entries = list(bundle.get("entry") or [])
    if profile != "document-only":
        return {**bundle, "entry": entries}
    kept = [e for e in entries if e["resource"]["resourceType"] in DOCUMENT_ONLY_TYPES]
    if not any(e["resource"]["resourceType"] == "DocumentReference" for e in kept):
        return {**bundle, "entry": []}  # a Provenance of nothing sent is no record
    return {**bundle, "entry": keep(entries, kept)}


def keep(entries: list[dict[str, Any]], kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``kept`` (a subset of ``entries``) made to stand alone: references to the other
    entries become logical references by identifier, and a Provenance keeps only the
    targets sent (none left: it is not sent either)."""
    kept_urls = {e["fullUrl"] for e in kept}
    dropped = {e["fullUrl"]: e["resource"] for e in entries if e["fullUrl"] not in kept_urls}
    out = []
    for entry in kept:
        resource = _relink(entry["resource"], dropped)
        if resource["resourceType"] == "Provenance":
            targets = [t for t in resource.get("target", [])
                       if t.get("reference") in kept_urls]
            if not targets:
                continue
            resource = {**resource, "target": targets}
        out.append({**entry, "resource": resource})
    return out


def _relink(node: Any, dropped: Mapping[str, Mapping[str, Any]]) -> Any:
    """References to entries not sent become logical references by identifier."""
    if isinstance(node, list):
        return [_relink(v, dropped) for v in node]
    if not isinstance(node, dict):
        return node
    reference = node.get("reference")
    if isinstance(reference, str) and reference in dropped:
        identifier = dropped[reference].get("identifier")
        if isinstance(identifier, list):
            identifier = identifier[0] if identifier else None
        logical = {k: v for k, v in node.items() if k != "reference"}
        if isinstance(identifier, Mapping):
            logical["identifier"] = dict(identifier)
        return logical
    return {k: _relink(v, dropped) for k, v in node.items()}
