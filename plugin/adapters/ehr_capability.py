"""What the EHR's CapabilityStatement allows: the ways ``"auto"`` may send a record and
how each entry is found again (pure), and the statement itself, read and kept per worker.

``"auto"``: the ways follow the EHR's CapabilityStatement (``GET [base]/metadata``,
read with the delivery's token and kept ``CAPABILITY_SECONDS`` per worker), in the
order fhir.md section 7.2 recommends (``ways_for``): ``transaction``, then
``individual``, then ``document-only``; ``ehr.deliver`` moves on when the EHR refuses
the shape of a request.

Only what the EHR promises is used: a conditional create or a search names only search
parameters the statement declares for that type (``declares``), never a modifier or a
chain. A Provenance has no identifier in R4; it is found again by the plugin's
``meta.tag`` (``_tag``), else by ``entity`` or ``target`` = the EHR's id of what it is
about, else it is left out (``how``, ``why_not``).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .ehr_http import Result, exchange, parse_json

__all__ = ["CAPABILITY_SECONDS", "WAYS", "Capabilities", "CapabilityError", "How", "Match",
           "bundle_types", "declares", "how", "profile_from_capability", "query_pairs",
           "searchable", "ways_for", "why_not"]

#: How long a worker keeps the EHR's CapabilityStatement (s).
CAPABILITY_SECONDS = 300.0


class CapabilityError(Exception):
    """The CapabilityStatement could not be read; ``result`` says why, as a failed
    delivery would."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.error)
        self.result = result


# -- choosing the ways to send --------------------------------------------------------

#: The ways ``auto`` sends a record, most complete and cheapest first.
WAYS = ("transaction", "individual", "document-only")


def ways_for(statement: Mapping[str, Any], bundle: Mapping[str, Any]) -> list[str]:
    """The ways the EHR described by ``statement`` can take ``bundle`` without a retry
    ever duplicating anything, in the order ``auto`` tries them; a ValueError, in words,
    when there is none.

    ``transaction`` when the server offers transactions and every entry it can match
    goes by conditional create (an entry that can only be searched for first cannot be
    part of a transaction); ``individual`` when some entry can go one by one;
    ``document-only`` when a DocumentReference can."""
    rest = _server_rest(statement)
    hows = [how(statement, e) for e in bundle.get("entry") or []]
    sendable = [h for h in hows if h is not None]
    documents = [h for e, h in zip(bundle.get("entry") or [], hows) if h is not None
                 and e["resource"]["resourceType"] == "DocumentReference"]
    found = []
    if "transaction" in _codes(rest.get("interaction")) and sendable \
            and all(h.method == "conditional" for h in sendable):
        found.append("transaction")
    if sendable:
        found.append("individual")
    if documents:
        found.append("document-only")
    if found:
        return found
    if _creates(rest, "DocumentReference"):
        raise ValueError("the EHR creates DocumentReferences but neither conditionally nor "
                         "searchable by identifier, so a retry could duplicate the record; "
                         "it was not sent")
    raise ValueError("the EHR's CapabilityStatement offers no create of DocumentReference "
                     "(nor a transaction with conditional creates): the record cannot be "
                     "delivered")


def profile_from_capability(statement: Mapping[str, Any], bundle_types: Iterable[str]) -> str:
    """The first way ``ways_for`` would try for a Bundle of one identified entry of each
    of ``bundle_types`` (what a test or a reader asks: "how would this EHR take it?")."""
    entries = [{"fullUrl": f"urn:uuid:{n}", "resource": {"resourceType": kind},
                "request": {"method": "POST", "url": kind,
                            "ifNoneExist": "identifier=urn:x|1"}}
               for n, kind in enumerate(bundle_types) if kind != "Provenance"]
    if not entries:
        raise ValueError("the EHR's CapabilityStatement offers no create of "
                         "DocumentReference: the record cannot be delivered")
    return ways_for(statement, {"entry": entries})[0]


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


def declares(statement: Mapping[str, Any], kind: str, parameter: str) -> bool:
    """Whether the EHR declares the search parameter ``parameter`` for ``kind`` (on the
    type, or on the server for every type, as ``_tag`` often is). Modifiers and chains
    (``entity:QuestionnaireResponse.identifier``) are never trusted to be supported:
    no CapabilityStatement element promises them."""
    if not parameter or ":" in parameter or "." in parameter:
        return False
    rest = _server_rest(statement)
    for declared in (_resource(rest, kind).get("searchParam"), rest.get("searchParam")):
        if any(isinstance(p, Mapping) and p.get("name") == parameter
               for p in declared or []):
            return True
    return False


def searchable(statement: Mapping[str, Any] | None, kind: str, *parameters: str) -> bool:
    """Whether ``GET [base]/<kind>?<parameters>`` is offered: a search-type interaction
    and every parameter declared (None, a profile set by hand: the EHR is trusted)."""
    if statement is None:
        return True
    rest = _server_rest(statement)
    return "search-type" in _codes(_resource(rest, kind).get("interaction")) \
        and all(declares(statement, kind, p) for p in parameters)


# -- how each entry is found again ------------------------------------------------------

@dataclass(frozen=True)
class Match:
    """How an entry's resource is found again in the EHR: by ``query`` as it is, or by
    ``parameter`` = the EHR's id of the entry ``after`` (a Provenance by its ``entity``
    or ``target``: known only once that entry is in the EHR)."""

    query: str | None = None
    parameter: str | None = None
    after: str | None = None

    def resolve(self, sent: Mapping[str, str]) -> str:
        if self.query is not None:
            return self.query
        assert self.parameter and self.after
        return f"{self.parameter}={sent[self.after]}"


@dataclass(frozen=True)
class How:
    """How one entry goes: ``method`` ``"conditional"`` (If-None-Exist) or ``"search"``
    (search first, POST when absent), found again by ``match``."""

    method: str
    match: Match


def how(statement: Mapping[str, Any] | None, entry: Mapping[str, Any]) -> How | None:
    """How to send one entry so that a retry never duplicates it, using only what the
    statement declares (None: a profile set by hand, the entry's own query trusted);
    None: it cannot be (leave it out, ``why_not`` says why)."""
    query = (entry.get("request") or {}).get("ifNoneExist")
    if not isinstance(query, str) or not query:
        return None  # nothing to match it by: a retry would duplicate it
    if statement is None:
        return How("conditional", Match(query=query))
    rest = _server_rest(statement)
    kind = entry["resource"]["resourceType"]
    match = _match(statement, entry, query)
    if match is None or not _creates(rest, kind):
        return None
    if _conditional(rest, kind):
        return How("conditional", match)
    if searchable(statement, kind, *([match.parameter] if match.parameter
                                     else [name for name, _ in query_pairs(query)])):
        return How("search", match)
    return None


def _match(statement: Mapping[str, Any], entry: Mapping[str, Any], query: str) -> Match | None:
    """The entry's own query when the EHR declares its parameters; for a resource
    without an identifier (Provenance: R4 gives it none), the first declared of
    ``_tag`` (the plugin's meta.tag, the Bundle's own query), ``entity`` (the source
    response) and ``target`` (the first target): the last two once that entry has an
    id in the EHR."""
    kind = entry["resource"]["resourceType"]
    if all(declares(statement, kind, name) for name, _ in query_pairs(query)):
        return Match(query=query)
    if kind != "Provenance":
        return None
    resource = entry["resource"]
    by_parameter = {
        "entity": [e.get("what", {}).get("reference") for e in resource.get("entity") or []],
        "target": [t.get("reference") for t in resource.get("target") or []]}
    for parameter, references in by_parameter.items():
        local = [r for r in references if isinstance(r, str) and r.startswith("urn:")]
        if local and declares(statement, kind, parameter):
            return Match(parameter=parameter, after=local[0])
    return None


def why_not(statement: Mapping[str, Any] | None, entry: Mapping[str, Any]) -> str:
    """Why ``how`` leaves the entry out, in words for the record page."""
    kind = entry["resource"]["resourceType"]
    if statement is None:
        return f"{kind} has nothing to find it again by"
    if not _creates(_server_rest(statement), kind):
        return f"the EHR does not create {kind}"
    if kind == "Provenance":
        return ("the EHR declares no search (_tag, entity or target) to find a Provenance "
                "again, so a retry could duplicate it")
    return (f"the EHR declares neither a conditional create of {kind} nor a search by "
            "its identifier, so a retry could duplicate it")


def query_pairs(query: str) -> list[tuple[str, str]]:
    """The parameters of an ``ifNoneExist`` query as the Bundle writes them (not
    percent-encoded: a ``+`` in a value is a plus)."""
    return [(name, value) for name, _, value in
            (part.partition("=") for part in query.split("&") if part)]


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
    answer = exchange("GET", base_url.rstrip("/") + "/metadata", None, token=token,
                      timeout=timeout, what="reading the EHR's CapabilityStatement")
    if isinstance(answer, Result):
        # nothing was said about the record itself: always worth another attempt
        raise CapabilityError(replace(answer, retryable=True))
    status, _, body = answer
    statement = parse_json(body)
    if not (isinstance(statement, dict)
            and statement.get("resourceType") == "CapabilityStatement"):
        raise CapabilityError(Result(
            delivered=False, retryable=True, status=status,
            error=f"reading the EHR's CapabilityStatement: HTTP {status} without a "
                  "CapabilityStatement"))
    return statement
