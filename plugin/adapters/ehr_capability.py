"""What the EHR's CapabilityStatement allows: the profile for ``"auto"`` and how each
entry goes one by one (pure), and the statement itself, read and kept per worker.

``"auto"``: the profile follows the EHR's CapabilityStatement (``GET [base]/metadata``,
read with the delivery's token and kept ``CAPABILITY_SECONDS`` per worker), in the
order fhir.md section 7.2 recommends (``profile_from_capability``): ``transaction``
when the server offers transactions and a conditional create of every type in the
Bundle; else ``individual`` when it creates DocumentReferences conditionally; else
``document-only`` when it creates DocumentReferences and can search them by
identifier; else the record is not sent, with the reason.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from .ehr_http import Result, exchange, parse_json

__all__ = ["CAPABILITY_SECONDS", "Capabilities", "CapabilityError", "bundle_types",
           "entry_method", "profile_from_capability", "query_pairs"]

#: How long a worker keeps the EHR's CapabilityStatement (s).
CAPABILITY_SECONDS = 300.0


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


def entry_method(statement: Mapping[str, Any] | None, entry: Mapping[str, Any]) -> str | None:
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
                                    for name, _ in query_pairs(query)):
        return "search"
    return None


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
