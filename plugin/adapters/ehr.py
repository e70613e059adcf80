"""The EHR's FHIR API, as far as write-back needs it: deliver one record (a Bundle).

The record is a transaction Bundle of conditional creates (``ifNoneExist``) on
identifiers the plugin owns, so a delivery that timed out, whose answer was lost or
whose worker died halfway can simply be sent again: what the EHR already holds is
matched, not duplicated (fhir.md section 7.2). EHRs differ in what they accept, hence
the profiles (setting ``EHR_PROFILE``):

- ``"transaction"``: the whole Bundle in one ``POST [base]``: QuestionnaireResponse,
  Observations, Conditions, ServiceRequests, DocumentReferences, Device and Provenance.
  All or nothing, and the EHR itself honours each entry's ``ifNoneExist``.
- ``"individual"``: the same entries one by one, in Bundle order (what an entry refers
  to first): ``POST [base]/<Type>`` with the entry's query in ``If-None-Exist``, each
  ``urn:uuid:`` reference rewritten to the ``<Type>/<id>`` the EHR answered (its
  ``Location``; a matched conditional create answers the existing resource's). A worker
  stopped halfway leaves some entries created: the retry's conditional creates match
  them and answer their ids, so the rest is linked right and nothing is duplicated.
- ``"document-only"``: only the DocumentReferences (the rendered PDFs) and their
  Provenance. Many EHRs refuse the rest: Oracle Health (Cerner) Millennium accepts
  Observation creates only for vital signs and laboratory results, and
  QuestionnaireResponse only for social history, while clinical-note DocumentReferences
  with a PDF are what US Core "Writing Clinical Notes" asks every server to accept
  (fhir.md section 7.1). Set by hand, it is posted as one transaction (as before);
  chosen by ``"auto"``, its entries go one by one like ``individual``.
- ``"auto"``: the profile follows the EHR's CapabilityStatement (``GET [base]/metadata``,
  read with the delivery's token and kept ``CAPABILITY_SECONDS`` per worker), in the
  order fhir.md section 7.2 recommends (``profile_from_capability``): ``transaction``
  when the server offers transactions and a conditional create of every type in the
  Bundle; else ``individual`` when it creates DocumentReferences conditionally; else
  ``document-only`` when it creates DocumentReferences and can search them by
  identifier; else the record is not sent, with the reason.

One by one, each entry goes the safest way the statement allows: a conditional create
when the type has ``conditionalCreate``; else, for an EHR without it, a search first
(``GET [base]/<Type>?identifier=system|value``, the entry's own ``ifNoneExist`` query)
and a plain POST only when nothing matched; a type the EHR cannot create, or could only
create blindly (no conditional create, no search on that parameter), is left out, and
references to what was left out become logical references by identifier (as
``document-only`` does). A retry then never duplicates: every POST is a no-op or
preceded by a search that finds what the first attempt created.

Plain ``urllib.request``: a few requests need no client library. Errors come back as
words for ``last_error``: the HTTP status and the OperationOutcome's issue texts, the
resource type and position of a failed entry, never the Bundle or anything from it.
"""
from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from ..core.bundle import references_in

__all__ = ["CAPABILITY_SECONDS", "Capabilities", "CapabilityError", "PROFILES", "Result",
           "SETTINGS", "bundle_types", "deliver", "for_profile", "post_individually",
           "post_transaction", "profile_from_capability"]

#: The profiles a delivery can go by; ``SETTINGS``: what ``EHR_PROFILE`` accepts.
PROFILES = ("transaction", "individual", "document-only")
SETTINGS = PROFILES + ("auto",)
#: How long a worker keeps the EHR's CapabilityStatement (s).
CAPABILITY_SECONDS = 300.0
#: Client errors worth retrying: request timeout, conflict (e.g. a concurrent write on
#: the EHR's side), precondition failed (conditional create matched several, which
#: another writer's retry can cause) and too many requests.
RETRYABLE_4XX = frozenset({408, 409, 412, 429})
DOCUMENT_ONLY_TYPES = ("DocumentReference", "Provenance")
#: The most of an error body read and the most OperationOutcome issues quoted.
MAX_ERROR_BODY = 64 * 1024
MAX_ISSUES = 5
#: The most of a success answer (transaction-response, search Bundle, metadata) read.
MAX_ANSWER = MAX_ERROR_BODY * 16
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class Result:
    """What became of one delivery: ``delivered``, or a failure that is ``retryable``
    or not, with ``error`` in words (no PHI) and the HTTP ``status`` when there was one;
    ``profile``: the one it went by (``auto`` resolved)."""

    delivered: bool
    retryable: bool = False
    status: int | None = None
    error: str | None = None
    profile: str | None = None


class CapabilityError(Exception):
    """The CapabilityStatement could not be read; ``result`` says why, as a failed
    delivery would."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.error)
        self.result = result


# -- choosing a profile -----------------------------------------------------------------

def profile_from_capability(statement: Mapping[str, Any], bundle_types: Iterable[str]) -> str:
    """The profile for a Bundle holding ``bundle_types`` on the EHR described by
    ``statement`` (a CapabilityStatement); a ValueError, in words, when none is safe."""
    rest = _server_rest(statement)
    types = set(bundle_types)
    if "transaction" in _codes(rest.get("interaction")) and types \
            and all(_conditional(rest, t) for t in types):
        return "transaction"
    if _conditional(rest, "DocumentReference"):
        return "individual"
    if _creates(rest, "DocumentReference"):
        if _searchable(rest, "DocumentReference", "identifier"):
            return "document-only"
        raise ValueError("the EHR creates DocumentReferences but neither conditionally nor "
                         "searchable by identifier, so a retry could duplicate the record; "
                         "it was not sent")
    raise ValueError("the EHR's CapabilityStatement offers no create of DocumentReference "
                     "(nor a transaction with conditional creates): the record cannot be "
                     "delivered")


def bundle_types(bundle: Mapping[str, Any]) -> list[str]:
    """The resource types of the Bundle's entries, each once, in order."""
    seen: dict[str, None] = {}
    for entry in bundle.get("entry") or []:
        seen[entry["resource"]["resourceType"]] = None
    return list(seen)


def _server_rest(statement: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(statement, Mapping) or \
            statement.get("resourceType") != "CapabilityStatement":
        raise ValueError("the EHR's metadata is not a CapabilityStatement")
    rests = [r for r in statement.get("rest") or [] if isinstance(r, Mapping)]
    for rest in rests:
        if rest.get("mode") == "server":
            return rest
    return rests[0] if rests else {}


def _resource(rest: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for resource in rest.get("resource") or []:
        if isinstance(resource, Mapping) and resource.get("type") == kind:
            return resource
    return {}


def _codes(interactions: Any) -> set[str]:
    return {i.get("code") for i in interactions or [] if isinstance(i, Mapping)}


def _creates(rest: Mapping[str, Any], kind: str) -> bool:
    return "create" in _codes(_resource(rest, kind).get("interaction"))


def _conditional(rest: Mapping[str, Any], kind: str) -> bool:
    return _creates(rest, kind) and _resource(rest, kind).get("conditionalCreate") is True


def _searchable(rest: Mapping[str, Any], kind: str, parameter: str) -> bool:
    """Whether ``GET [base]/<kind>?<parameter>=...`` is offered: a search-type
    interaction and the parameter among the declared ones. Modifiers and chains
    (``entity:QuestionnaireResponse.identifier``) are not trusted to be supported."""
    resource = _resource(rest, kind)
    if "search-type" not in _codes(resource.get("interaction")) or not parameter \
            or ":" in parameter or "." in parameter:
        return False
    names = {p.get("name") for p in resource.get("searchParam") or []
             if isinstance(p, Mapping)}
    return parameter in names


def _method(statement: Mapping[str, Any] | None, entry: Mapping[str, Any]) -> str | None:
    """How to send one entry one by one: ``"conditional"`` (If-None-Exist),
    ``"search"`` (search first, POST when absent) or None (leave it out)."""
    query = (entry.get("request") or {}).get("ifNoneExist")
    if not isinstance(query, str) or not query:
        return None  # nothing to match it by: a retry would duplicate it
    if statement is None:
        return "conditional"  # set by hand: the EHR is trusted to honour If-None-Exist
    rest = _server_rest(statement)
    kind = entry["resource"]["resourceType"]
    if _conditional(rest, kind):
        return "conditional"
    if _creates(rest, kind) and all(_searchable(rest, kind, name)
                                    for name, _ in _pairs(query)):
        return "search"
    return None


# -- the CapabilityStatement ------------------------------------------------------------

class Capabilities:
    """The EHR's CapabilityStatement, read once and kept ``ttl`` seconds (one per
    worker; thread-safe). ``statement`` raises ``CapabilityError``."""

    def __init__(self, base_url: str, *, timeout: float, ttl: float = CAPABILITY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._base_url = base_url
        self._timeout = timeout
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._statement: dict[str, Any] | None = None
        self._read_at = 0.0

    def statement(self, token: str | None) -> dict[str, Any]:
        with self._lock:
            if self._statement is not None and self._clock() - self._read_at < self._ttl:
                return self._statement
            statement = _read_capability(self._base_url, token=token, timeout=self._timeout)
            self._statement, self._read_at = statement, self._clock()
            return statement

    def forget(self) -> None:
        with self._lock:
            self._statement = None


def _read_capability(base_url: str, *, token: str | None, timeout: float) -> dict[str, Any]:
    answer = _exchange("GET", base_url.rstrip("/") + "/metadata", None, token=token,
                       timeout=timeout, what="reading the EHR's CapabilityStatement")
    if isinstance(answer, Result):
        # nothing was said about the record itself: always worth another attempt
        raise CapabilityError(replace(answer, retryable=True))
    status, _, body = answer
    statement = _json(body)
    if not (isinstance(statement, dict)
            and statement.get("resourceType") == "CapabilityStatement"):
        raise CapabilityError(Result(
            delivered=False, retryable=True, status=status,
            error=f"reading the EHR's CapabilityStatement: HTTP {status} without a "
                  "CapabilityStatement"))
    return statement


# -- delivering -------------------------------------------------------------------------

def deliver(base_url: str, bundle: Mapping[str, Any], *, token: str | None = None,
            timeout: float, profile: str = "transaction",
            capabilities: Capabilities | None = None) -> Result:
    """Deliver ``bundle`` under ``profile`` (one of ``SETTINGS``); ``auto`` reads the
    CapabilityStatement through ``capabilities`` (a fresh read when None)."""
    if profile not in SETTINGS:
        raise ValueError(f"EHR_PROFILE must be one of {', '.join(SETTINGS)}, not {profile!r}")
    statement = None
    if profile == "auto":
        capabilities = capabilities or Capabilities(base_url, timeout=timeout, ttl=0)
        try:
            statement = capabilities.statement(token)
            profile = profile_from_capability(statement, bundle_types(bundle))
        except CapabilityError as error:
            return error.result
        except ValueError as error:  # no safe profile: retrying would not change it
            return Result(delivered=False, retryable=False, error=str(error))
    if profile == "transaction" or (profile == "document-only" and statement is None):
        return post_transaction(base_url, bundle, token=token, timeout=timeout,
                                profile=profile)
    return post_individually(base_url, bundle, token=token, timeout=timeout,
                             profile=profile, statement=statement)


def post_transaction(base_url: str, bundle: Mapping[str, Any], *, token: str | None = None,
                     timeout: float, profile: str = "transaction") -> Result:
    """POST ``bundle`` (adapted to ``profile``) to the EHR's base URL."""
    payload = for_profile(bundle, profile)
    if not payload.get("entry"):
        return _nothing(profile)
    answer = _exchange("POST", base_url.rstrip("/") + "/", payload, token=token,
                       timeout=timeout, headers={"Prefer": "return=minimal"})
    if isinstance(answer, Result):
        return answer
    status, _, body = answer
    parsed = _json(body)
    if not (isinstance(parsed, Mapping) and parsed.get("resourceType") == "Bundle"
            and parsed.get("type") == "transaction-response"):
        # accepted (2xx) but not what a FHIR server answers a transaction with: retrying
        # is harmless (conditional creates) and may meet a healthier server
        return Result(delivered=False, retryable=True, status=status,
                      error=f"HTTP {status} without a transaction-response Bundle")
    return Result(delivered=True, status=status, profile=profile)


def post_individually(base_url: str, bundle: Mapping[str, Any], *, token: str | None = None,
                      timeout: float, profile: str = "individual",
                      statement: Mapping[str, Any] | None = None) -> Result:
    """Send the entries of ``bundle`` (all, or ``document-only``'s) one by one, each by
    the method ``statement`` allows (all conditional creates when None)."""
    if profile not in ("individual", "document-only"):
        raise ValueError(f"one by one goes by individual or document-only, not {profile!r}")
    try:
        chosen = for_profile(bundle, profile)["entry"]
        methods = {e["fullUrl"]: _method(statement, e) for e in chosen}
    except ValueError as error:  # not a CapabilityStatement
        return Result(delivered=False, retryable=False, error=str(error))
    entries = _keep(chosen, [e for e in chosen if methods[e["fullUrl"]]])
    if profile == "document-only" and not any(
            e["resource"]["resourceType"] == "DocumentReference" for e in entries):
        entries = []
    if not entries:
        return _nothing(profile)
    try:
        ordered = _referenced_first(entries)
    except ValueError as error:
        return Result(delivered=False, retryable=False, error=str(error))
    base = base_url.rstrip("/")
    ids: dict[str, str] = {}
    for position, entry in enumerate(ordered, 1):
        kind = entry["resource"]["resourceType"]
        where = f"{kind} ({position} of {len(ordered)})"
        resource = _rewrite(entry["resource"], ids)
        query = entry["request"]["ifNoneExist"]
        if methods[entry["fullUrl"]] == "search":
            found = _search(base, kind, query, token=token, timeout=timeout, where=where)
            if isinstance(found, Result):
                return found
            if found is not None:
                ids[entry["fullUrl"]] = found
                continue
            created = _create(base, kind, resource, None, token=token, timeout=timeout,
                              where=where)
        else:
            created = _create(base, kind, resource, query, token=token, timeout=timeout,
                              where=where)
        if isinstance(created, Result):
            return created
        ids[entry["fullUrl"]] = created
    return Result(delivered=True, status=200, profile=profile)


def _nothing(profile: str) -> Result:
    # e.g. document-only and a record without a rendered document: sending a bare
    # Provenance would claim a delivery that did not happen
    return Result(delivered=False, retryable=False,
                  error=f"nothing to send under the {profile} profile (the record has no "
                        "document)")


def _create(base: str, kind: str, resource: Mapping[str, Any], query: str | None, *,
            token: str | None, timeout: float, where: str) -> str | Result:
    """``POST [base]/<kind>`` (conditional with ``query``); the ``<kind>/<id>`` made or
    matched: from ``Location``, else from the resource answered (a matched conditional
    create need not send a Location; hence no ``Prefer: return=minimal`` here)."""
    headers = {"If-None-Exist": query} if query else {}
    answer = _exchange("POST", f"{base}/{kind}", resource, token=token, timeout=timeout,
                       headers=headers, what=where)
    if isinstance(answer, Result):
        return answer
    status, location, body = answer
    found = _id_from_location(location, kind)
    if found is None:
        parsed = _json(body)
        if isinstance(parsed, Mapping) and parsed.get("resourceType") == kind \
                and isinstance(parsed.get("id"), str) and _ID.match(parsed["id"]):
            found = parsed["id"]
    if found is None:
        return Result(delivered=False, retryable=True, status=status,
                      error=f"{where}: HTTP {status} names no id (no Location)")
    return f"{kind}/{found}"


def _search(base: str, kind: str, query: str, *, token: str | None, timeout: float,
            where: str) -> str | None | Result:
    """``GET [base]/<kind>?<query>``: the ``<kind>/<id>`` of the one match, None for
    none; several are a failure (the EHR already holds copies)."""
    url = f"{base}/{kind}?" + urlencode(_pairs(query), quote_via=quote)
    answer = _exchange("GET", url, None, token=token, timeout=timeout, what=where)
    if isinstance(answer, Result):
        return answer
    status, _, body = answer
    parsed = _json(body)
    if not (isinstance(parsed, Mapping) and parsed.get("resourceType") == "Bundle"):
        return Result(delivered=False, retryable=True, status=status,
                      error=f"{where}: the search answered HTTP {status} without a Bundle")
    matches = [e["resource"] for e in parsed.get("entry") or []
               if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)
               and e["resource"].get("resourceType") == kind
               and (e.get("search") or {}).get("mode", "match") == "match"]
    total = parsed.get("total")
    count = max(len(matches), total if type(total) is int else 0)
    if count == 0:
        return None
    if count > 1:
        return Result(delivered=False, retryable=False, status=status,
                      error=f"{where}: the EHR already holds {count} matches for its "
                            "identifier; not sent again")
    match_id = matches[0].get("id")
    if not isinstance(match_id, str) or not _ID.match(match_id):
        return Result(delivered=False, retryable=True, status=status,
                      error=f"{where}: the search's match has no usable id")
    return f"{kind}/{match_id}"


def _pairs(query: str) -> list[tuple[str, str]]:
    """The parameters of an ``ifNoneExist`` query as the Bundle writes them (not
    percent-encoded: a ``+`` in a value is a plus)."""
    return [(name, value) for name, _, value in
            (part.partition("=") for part in query.split("&") if part)]


def _id_from_location(location: str | None, kind: str) -> str | None:
    """The id in ``[base]/<kind>/<id>[/_history/<v>]`` (absolute or relative)."""
    if not location:
        return None
    segments = [s for s in urlsplit(location).path.split("/") if s]
    for index in range(len(segments) - 2, -1, -1):
        if segments[index] == kind and _ID.match(segments[index + 1]) \
                and segments[index + 1] != "_history":
            return segments[index + 1]
    return None


def _referenced_first(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries in Bundle order, except that an entry comes after every entry it
    refers to (so its references can be rewritten to real ids)."""
    by_url = {e["fullUrl"]: e for e in entries}
    done: dict[str, None] = {}
    visiting: set[str] = set()

    def visit(url: str) -> None:
        if url in done:
            return
        if url in visiting:
            raise ValueError("the record's entries refer to each other in a cycle; it "
                             "cannot be sent one by one")
        visiting.add(url)
        for reference in references_in(by_url[url]["resource"]):
            if reference in by_url and reference != url:
                visit(reference)
        visiting.discard(url)
        done[url] = None

    for entry in entries:
        visit(entry["fullUrl"])
    return [by_url[url] for url in done]


def _rewrite(node: Any, ids: Mapping[str, str]) -> Any:
    """References to entries already sent point at the ids the EHR gave them."""
    if isinstance(node, list):
        return [_rewrite(v, ids) for v in node]
    if not isinstance(node, Mapping):
        return node
    out = {k: _rewrite(v, ids) for k, v in node.items()}
    reference = node.get("reference")
    if isinstance(reference, str) and reference in ids:
        out["reference"] = ids[reference]
    return out


# -- what each profile sends ------------------------------------------------------------

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
    return {**bundle, "entry": _keep(entries, kept)}


def _keep(entries: list[dict[str, Any]], kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


# -- HTTP -------------------------------------------------------------------------------

def _exchange(method: str, url: str, body: Any, *, token: str | None, timeout: float,
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
            text = _outcome_words(error.read(MAX_ERROR_BODY))
        status = error.code
        retryable = status >= 500 or status in RETRYABLE_4XX
        return Result(delivered=False, retryable=retryable, status=status,
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


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _outcome_words(body: bytes) -> str:
    """The OperationOutcome's issue texts (diagnostics or details.text), joined."""
    outcome = _json(body)
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
