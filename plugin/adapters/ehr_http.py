"""One request to the EHR's FHIR API, and what became of a delivery (``Result``).

Plain ``urllib.request``: a few requests need no client library. Errors come back as
words for ``last_error``: the HTTP status and the OperationOutcome's issue texts, the
resource type and position of a failed entry, never the Bundle or anything from it.
"""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_ANSWER", "Result", "exchange", "parse_json", "search"]

#: Client errors worth retrying: request timeout, conflict (e.g. a concurrent write on
#: the EHR's side), precondition failed (conditional create matched several, which
#: another writer's retry can cause) and too many requests.
RETRYABLE_4XX = frozenset({408, 409, 412, 429})
#: The most of an error body read and the most OperationOutcome issues quoted.
MAX_ERROR_BODY = 64 * 1024
MAX_ISSUES = 5
#: The most of a success answer (transaction-response, search Bundle, metadata) read.
MAX_ANSWER = MAX_ERROR_BODY * 16


@dataclass(frozen=True)
class Result:
    """What became of one delivery: ``delivered``, or a failure that is ``retryable``
    or not, with ``error`` in words (no PHI) and the HTTP ``status`` when there was one;
    ``profile``: the one it went by (``auto`` resolved); ``codes``: the refusal's
    OperationOutcome ``issue.code`` values (``ehr_refusals`` reads them).

    What reached the EHR, for the record page and for a retry that sends only what is
    missing: ``sent`` maps each entry's fullUrl to the ``<Type>/<id>`` the EHR gave it;
    ``unsent``: (resource type, why) for each entry deliberately not sent. ``hold``:
    the delivery waits for a person (the EHR's patient must be confirmed), with the
    ``candidates`` the EHR offered."""

    delivered: bool
    retryable: bool = False
    status: int | None = None
    error: str | None = None
    profile: str | None = None
    codes: tuple[str, ...] = ()
    sent: Mapping[str, str] = field(default_factory=dict)
    unsent: tuple[tuple[str, str], ...] = ()
    hold: str | None = None
    candidates: tuple[Mapping[str, Any], ...] = ()


def exchange(method: str, url: str, body: Any, *, token: str | None, timeout: float,
             headers: Mapping[str, str] | None = None,
             what: str = "") -> tuple[int, str | None, bytes] | Result:
    """One request: (status, Location, body) of a 2xx answer, or the failure as a
    Result in words (``what`` prefixes them)."""
    sent = {"Accept": "application/fhir+json", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        sent["Content-Type"] = "application/fhir+json; charset=utf-8"
    if token:
        sent["Authorization"] = f"Bearer {token}"
    prefix = f"{what}: " if what else ""
    request = urllib.request.Request(url, data=data, headers=sent, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status = response.status
            location = response.headers.get("Location")
            answer = response.read(MAX_ANSWER)
    except urllib.error.HTTPError as error:
        with error:
            text, codes = _outcome_words(error.read(MAX_ERROR_BODY))
        status = error.code
        retryable = status >= 500 or status in RETRYABLE_4XX
        return Result(delivered=False, retryable=retryable, status=status, codes=codes,
                      error=f"{prefix}HTTP {status} {error.reason or ''}".strip()
                      + (f": {text}" if text else ""))
    except (TimeoutError, socket.timeout):
        return Result(delivered=False, retryable=True,
                      error=f"{prefix}no answer within {timeout:g} s (timeout)")
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return Result(delivered=False, retryable=True,
                          error=f"{prefix}no answer within {timeout:g} s (timeout)")
        return Result(delivered=False, retryable=True,
                      error=f"{prefix}cannot reach the EHR: {_reason(reason)}")
    except (ConnectionError, OSError) as error:  # e.g. dropped mid-answer
        return Result(delivered=False, retryable=True,
                      error=f"{prefix}connection lost: {_reason(error)}")
    if not 200 <= status < 300:  # e.g. a 1xx/3xx urllib did not follow
        return Result(delivered=False, retryable=True, status=status,
                      error=f"{prefix}HTTP {status}: unexpected answer")
    return status, location, answer


def search(url: str, kind: str, *, token: str | None, timeout: float,
           what: str) -> tuple[list[Mapping[str, Any]], int] | Result:
    """``GET`` a search URL: the matches of type ``kind`` (not includes) and how many
    the server says there are in all, or the failure as a Result."""
    answer = exchange("GET", url, None, token=token, timeout=timeout, what=what)
    if isinstance(answer, Result):
        return answer
    status, _, body = answer
    parsed = parse_json(body)
    if not (isinstance(parsed, Mapping) and parsed.get("resourceType") == "Bundle"):
        return Result(delivered=False, retryable=True, status=status,
                      error=f"{what}: the search answered HTTP {status} without a Bundle")
    matches = [e["resource"] for e in parsed.get("entry") or []
               if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)
               and e["resource"].get("resourceType") == kind
               and (e.get("search") or {}).get("mode", "match") == "match"]
    total = parsed.get("total")
    return matches, max(len(matches), total if type(total) is int else 0)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _outcome_words(body: bytes) -> tuple[str, tuple[str, ...]]:
    """The OperationOutcome's issue texts (diagnostics or details.text), joined, and
    its issue codes."""
    outcome = parse_json(body)
    if not isinstance(outcome, Mapping) or outcome.get("resourceType") != "OperationOutcome":
        return "", ()
    words, codes = [], []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, Mapping):
            continue
        if isinstance(issue.get("code"), str) and len(codes) < MAX_ISSUES:
            codes.append(issue["code"])
        details = issue.get("details")
        text = (details.get("text") if isinstance(details, Mapping) else None) \
            or issue.get("diagnostics") or issue.get("code")
        if isinstance(text, str) and text.strip():
            words.append(" ".join(text.split()))
    return "; ".join(words[:MAX_ISSUES]), tuple(codes)


def _reason(error: Any) -> str:
    if isinstance(error, OSError) and error.strerror:
        return str(error.strerror)
    return str(error) or type(error).__name__
