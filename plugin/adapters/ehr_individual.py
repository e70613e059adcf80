"""Delivering a record entry by entry (profile ``"individual"``, and ``"document-only"``
when chosen by ``"auto"``).

The entries go one by one, in Bundle order (what an entry refers to first):
``POST [base]/<Type>`` with the entry's query in ``If-None-Exist``, each ``urn:uuid:``
reference rewritten to the ``<Type>/<id>`` the EHR answered (its ``Location``; a matched
conditional create answers the existing resource's). A worker stopped halfway leaves
some entries created: the retry's conditional creates match them and answer their ids,
so the rest is linked right and nothing is duplicated.

One by one, each entry goes the safest way the statement allows: a conditional create
when the type has ``conditionalCreate``; else, for an EHR without it, a search first
(``GET [base]/<Type>?identifier=system|value``, the entry's own ``ifNoneExist`` query)
and a plain POST only when nothing matched; a type the EHR cannot create, or could only
create blindly (no conditional create, no search on that parameter), is left out, and
references to what was left out become logical references by identifier (as
``document-only`` does). A retry then never duplicates: every POST is a no-op or
preceded by a search that finds what the first attempt created.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from ..core.bundle import references_in
from .ehr_capability import entry_method, query_pairs
from .ehr_http import Result, exchange, parse_json
from .ehr_profiles import for_profile, keep, nothing_to_send

__all__ = ["post_individually"]

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def post_individually(base_url: str, bundle: Mapping[str, Any], *, token: str | None = None,
                      timeout: float, profile: str = "individual",
                      statement: Mapping[str, Any] | None = None) -> Result:
    """Send the entries of ``bundle`` (all, or ``document-only``'s) one by one, each by
    the method ``statement`` allows (all conditional creates when None)."""
    if profile not in ("individual", "document-only"):
        raise ValueError(f"one by one goes by individual or document-only, not {profile!r}")
    try:
        chosen = for_profile(bundle, profile)["entry"]
        methods = {e["fullUrl"]: entry_method(statement, e) for e in chosen}
    except ValueError as error:  # not a CapabilityStatement
        return Result(delivered=False, retryable=False, error=str(error))
    entries = keep(chosen, [e for e in chosen if methods[e["fullUrl"]]])
    if profile == "document-only" and not any(
            e["resource"]["resourceType"] == "DocumentReference" for e in entries):
        entries = []
    if not entries:
        return nothing_to_send(profile)
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


def _create(base: str, kind: str, resource: Mapping[str, Any], query: str | None, *,
            token: str | None, timeout: float, where: str) -> str | Result:
    """``POST [base]/<kind>`` (conditional with ``query``); the ``<kind>/<id>`` made or
    matched: from ``Location``, else from the resource answered (a matched conditional
    create need not send a Location; hence no ``Prefer: return=minimal`` here)."""
    headers = {"If-None-Exist": query} if query else {}
    answer = exchange("POST", f"{base}/{kind}", resource, token=token, timeout=timeout,
                      headers=headers, what=where)
    if isinstance(answer, Result):
        return answer
    status, location, body = answer
    found = _id_from_location(location, kind)
    if found is None:
        parsed = parse_json(body)
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
    url = f"{base}/{kind}?" + urlencode(query_pairs(query), quote_via=quote)
    answer = exchange("GET", url, None, token=token, timeout=timeout, what=where)
    if isinstance(answer, Result):
        return answer
    status, _, body = answer
    parsed = parse_json(body)
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
