"""The EHR's FHIR API, as far as write-back needs it: POST one transaction Bundle.

The Bundle is idempotent (conditional creates on identifiers the plugin owns,
``ifNoneExist``), so a POST that timed out or whose answer was lost can simply be sent
again: what the EHR already holds is matched, not duplicated (fhir.md section 7.2).

EHR profiles (setting ``EHR_PROFILE``):

- ``"transaction"``: the whole Bundle: QuestionnaireResponse, Observations, Conditions,
  ServiceRequests, DocumentReferences, Device and Provenance.
- ``"document-only"``: only the DocumentReferences (the rendered PDFs) and the Provenance.
  Many EHRs refuse the rest: Oracle Health (Cerner) Millennium accepts Observation
  creates only for vital signs and laboratory results, and QuestionnaireResponse only
  for social history, while clinical-note DocumentReferences with a PDF are what US Core
  "Writing Clinical Notes" asks every server to accept (fhir.md section 7.1). References
  from the kept entries to dropped ones become logical references (by identifier).

Plain ``urllib.request``: one POST needs no client library. Errors come back as words
for ``last_error``: the HTTP status and the OperationOutcome's issue texts, never the
Bundle or anything from it.
"""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PROFILES", "Result", "for_profile", "post_transaction"]

PROFILES = ("transaction", "document-only")
#: Client errors worth retrying: request timeout, conflict (e.g. a concurrent write on
#: the EHR's side), precondition failed (conditional create matched several, which
#: another writer's retry can cause) and too many requests.
RETRYABLE_4XX = frozenset({408, 409, 412, 429})
DOCUMENT_ONLY_TYPES = ("DocumentReference", "Provenance")
#: The most of an error body read and the most OperationOutcome issues quoted.
MAX_ERROR_BODY = 64 * 1024
MAX_ISSUES = 5


@dataclass(frozen=True)
class Result:
    """What became of one POST: ``delivered``, or a failure that is ``retryable`` or
    not, with ``error`` in words (no PHI) and the HTTP ``status`` when there was one."""

    delivered: bool
    retryable: bool = False
    status: int | None = None
    error: str | None = None


def post_transaction(base_url: str, bundle: Mapping[str, Any], *, token: str | None = None,
                     timeout: float, profile: str = "transaction") -> Result:
    """POST ``bundle`` (adapted to ``profile``) to the EHR's base URL."""
    payload = for_profile(bundle, profile)
    if not payload.get("entry"):
        # e.g. document-only and a record without a rendered document: sending a bare
        # Provenance would claim a delivery that did not happen
        return Result(delivered=False, retryable=False,
                      error=f"nothing to send under the {profile} profile (the record "
                            "has no document)")
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/fhir+json; charset=utf-8",
               "Accept": "application/fhir+json", "Prefer": "return=minimal"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base_url.rstrip("/") + "/", data=body, headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status = response.status
            answer = response.read(MAX_ERROR_BODY * 16)
    except urllib.error.HTTPError as error:
        with error:
            text = _outcome_words(error.read(MAX_ERROR_BODY))
        status = error.code
        retryable = status >= 500 or status in RETRYABLE_4XX
        return Result(delivered=False, retryable=retryable, status=status,
                      error=f"HTTP {status} {error.reason or ''}".strip()
                      + (f": {text}" if text else ""))
    except (TimeoutError, socket.timeout):
        return Result(delivered=False, retryable=True, error="no answer within "
                                                              f"{timeout:g} s (timeout)")
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return Result(delivered=False, retryable=True,
                          error=f"no answer within {timeout:g} s (timeout)")
        return Result(delivered=False, retryable=True,
                      error=f"cannot reach the EHR: {_reason(reason)}")
    except (ConnectionError, OSError) as error:  # e.g. dropped mid-answer
        return Result(delivered=False, retryable=True,
                      error=f"connection lost: {_reason(error)}")
    if not 200 <= status < 300:  # e.g. a 1xx/3xx urllib did not follow
        return Result(delivered=False, retryable=True, status=status,
                      error=f"HTTP {status}: unexpected answer")
    try:
        parsed = json.loads(answer)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if not (isinstance(parsed, Mapping) and parsed.get("resourceType") == "Bundle"
            and parsed.get("type") == "transaction-response"):
        # accepted (2xx) but not what a FHIR server answers a transaction with: retrying
        # is harmless (conditional creates) and may meet a healthier server
        return Result(delivered=False, retryable=True, status=status,
                      error=f"HTTP {status} without a transaction-response Bundle")
    return Result(delivered=True, status=status)


def for_profile(bundle: Mapping[str, Any], profile: str) -> dict[str, Any]:
    """The Bundle as sent under ``profile`` (a ValueError for an unknown one)."""
    if profile not in PROFILES:
        raise ValueError(f"EHR_PROFILE must be one of {', '.join(PROFILES)}, not {profile!r}")
    entries = list(bundle.get("entry") or [])
    if profile == "transaction":
        return {**bundle, "entry": entries}
    kept = [e for e in entries if e["resource"]["resourceType"] in DOCUMENT_ONLY_TYPES]
    if not any(e["resource"]["resourceType"] == "DocumentReference" for e in kept):
        return {**bundle, "entry": []}  # a Provenance of nothing sent is no record
    kept_urls = {e["fullUrl"] for e in kept}
    dropped = {e["fullUrl"]: e["resource"] for e in entries if e["fullUrl"] not in kept_urls}
    out = []
    for entry in kept:
        resource = _relink(entry["resource"], dropped)
        if resource["resourceType"] == "Provenance":
            targets = [t for t in resource.get("target", []) if t.get("type") ==
                       "DocumentReference" or t.get("reference") in kept_urls]
            resource = {**resource, "target": targets}
        out.append({**entry, "resource": resource})
    return {**bundle, "entry": out}


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


def _outcome_words(body: bytes) -> str:
    """The OperationOutcome's issue texts (diagnostics or details.text), joined."""
    try:
        outcome = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(outcome, Mapping) or outcome.get("resourceType") != "OperationOutcome":
        return ""
    words = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, Mapping):
            continue
        details = issue.get("details")
        text = (details.get("text") if isinstance(details, Mapping) else None) \
            or issue.get("diagnostics") or issue.get("code")
        if isinstance(text, str) and text.strip():
            words.append(" ".join(text.split()))
    return "; ".join(words[:MAX_ISSUES])


def _reason(error: Any) -> str:
    if isinstance(error, OSError) and error.strerror:
        return str(error.strerror)
    return str(error) or type(error).__name__
