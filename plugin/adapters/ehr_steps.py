"""Sending a record in dependency-ordered steps: transactions within the EHR's entry
limit, or entry by entry.

``plan`` decides what goes (``ehr_capability.how``: the entries a retry can never
duplicate; the rest left out with the reason, references to them made logical by
identifier) and in which order: an entry after every entry it refers to. ``send`` then
sends what is not in the EHR yet:

- as transactions (``limit`` entries at most; None: all in one), each ``POST [base]``
  with the entries' conditional creates; references to entries of an earlier step are
  rewritten to the ids the EHR answered (the ``location`` of each entry of its
  ``transaction-response``), references inside one step stay ``urn:uuid:`` for the EHR
  to resolve (FHIR R4 transaction rules). An entry matched by the EHR's id of another
  (a Provenance by ``entity`` or ``target``) starts a new step after that one.
- entry by entry: ``POST [base]/<Type>`` with ``If-None-Exist`` (or a search first,
  then a plain POST only when nothing matched, for an EHR without conditional create),
  each reference rewritten to the ``<Type>/<id>`` the EHR answered (its ``Location``; a
  matched conditional create answers the existing resource's).

What reached the EHR is kept in ``sent`` (fullUrl to ``<Type>/<id>``), returned with
every Result, success or not: the outbox stores it, and the next attempt sends only
what is missing. A worker stopped halfway loses nothing either: the retry's
conditional creates match what the first attempt created and answer their ids.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from ..core.bundle import references_in
from .ehr_capability import How, how, query_pairs, why_not
from .ehr_http import Result, exchange, parse_json, search
from .ehr_profiles import DOCUMENT_ONLY_TYPES, keep

__all__ = ["Plan", "plan", "send"]

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class Plan:
    """What goes, in order (``entries``, each sent by ``hows[fullUrl]``), and what does
    not (``unsent``: resource type and why)."""

    entries: tuple[dict[str, Any], ...]
    hows: Mapping[str, How]
    unsent: tuple[tuple[str, str], ...]


def plan(bundle: Mapping[str, Any], statement: Mapping[str, Any] | None, *,
         documents_only: bool = False) -> Plan:
    """The plan for ``bundle`` on the EHR ``statement`` describes (None: a profile set
    by hand: every entry by its own query). ValueError: the entries refer to each other
    in a cycle, or the statement is not one."""
    entries = list(bundle.get("entry") or [])
    unsent: list[tuple[str, str]] = []
    if documents_only:
        chosen = [e for e in entries if e["resource"]["resourceType"] in DOCUMENT_ONLY_TYPES]
        unsent += [(e["resource"]["resourceType"], "only documents go to this EHR")
                   for e in entries if e not in chosen]
    else:
        chosen = entries
    hows = {e["fullUrl"]: how(statement, e) for e in chosen}
    unsent += [(e["resource"]["resourceType"], why_not(statement, e))
               for e in chosen if hows[e["fullUrl"]] is None]
    kept = keep(entries, [e for e in chosen if hows[e["fullUrl"]] is not None])
    if documents_only and not any(e["resource"]["resourceType"] == "DocumentReference"
                                  for e in kept):
        kept = []
    for entry in kept:  # a Provenance left with no target to match by is no record
        match = hows[entry["fullUrl"]].match
        if match.after and match.after not in {e["fullUrl"] for e in kept}:
            kept = [e for e in kept if e is not entry]
            unsent.append(("Provenance", "what it would be found by was not sent"))
    return Plan(tuple(_referenced_first(kept)),
                {url: h for url, h in hows.items() if h is not None}, tuple(unsent))


def send(base_url: str, chosen: Plan, *, transaction: bool, limit: int | None,
         sent: Mapping[str, str], token: str | None, timeout: float,
         profile: str) -> tuple[Result, int]:
    """Send what of ``chosen`` is not in ``sent`` yet; the Result (with every id known,
    ``sent``) and the number of entries of the request refused (0: none was)."""
    base = base_url.rstrip("/")
    known = dict(sent)
    todo = [e for e in chosen.entries if e["fullUrl"] not in known]
    steps = _steps(todo, chosen.hows, limit) if transaction else [[e] for e in todo]
    for number, step in enumerate(steps, 1):
        if transaction:
            where = f"step {number} of {len(steps)} ({len(step)} entries)" \
                if len(steps) > 1 else ""
            failure = _transaction(base, step, chosen.hows, known, token=token,
                                   timeout=timeout, where=where)
        else:
            kind = step[0]["resource"]["resourceType"]
            position = len(chosen.entries) - len(todo) + number
            failure = _one(base, step[0], chosen.hows[step[0]["fullUrl"]], known,
                           token=token, timeout=timeout,
                           where=f"{kind} ({position} of {len(chosen.entries)})")
        if failure is not None:
            return replace(failure, sent=dict(known), unsent=chosen.unsent), len(step)
    if not chosen.entries:
        return Result(delivered=False, retryable=False, unsent=chosen.unsent,
                      error=f"nothing to send under the {profile} profile"
                            + (" (the record has no document)"
                               if profile == "document-only" else "")), 0
    return Result(delivered=True, status=200, profile=profile, sent=dict(known),
                  unsent=chosen.unsent), 0


def _steps(entries: list[dict[str, Any]], hows: Mapping[str, How],
           limit: int | None) -> list[list[dict[str, Any]]]:
    """The entries cut into transactions of at most ``limit``, in order; an entry
    matched by another's EHR id begins a step after that other's."""
    steps: list[list[dict[str, Any]]] = [[]]
    for entry in entries:
        after = hows[entry["fullUrl"]].match.after
        current = steps[-1]
        if current and ((limit and len(current) >= limit)
                        or any(e["fullUrl"] == after for e in current)):
            steps.append([])
        steps[-1].append(entry)
    return [s for s in steps if s]


def _transaction(base: str, step: list[dict[str, Any]], hows: Mapping[str, How],
                 known: dict[str, str], *, token: str | None, timeout: float,
                 where: str) -> Result | None:
    """One transaction; the ids it answered go into ``known``; the failure, if any."""
    entries = [{"fullUrl": e["fullUrl"], "resource": rewrite_references(e["resource"], known),
                "request": {**e["request"],
                            "ifNoneExist": hows[e["fullUrl"]].match.resolve(known)}}
               for e in step]
    answer = exchange("POST", base + "/", {"resourceType": "Bundle", "type": "transaction",
                                           "entry": entries},
                      token=token, timeout=timeout, what=where)
    if isinstance(answer, Result):
        return answer
    status, _, body = answer
    parsed = parse_json(body)
    prefix = f"{where}: " if where else ""
    if not (isinstance(parsed, Mapping) and parsed.get("resourceType") == "Bundle"
            and parsed.get("type") == "transaction-response"):
        # accepted (2xx) but not what a FHIR server answers a transaction with: retrying
        # is harmless (conditional creates) and may meet a healthier server
        return Result(delivered=False, retryable=True, status=status,
                      error=f"{prefix}HTTP {status} without a transaction-response Bundle")
    answers = [a for a in parsed.get("entry") or [] if isinstance(a, Mapping)]
    ids = {}
    for entry, answered in zip(step, answers):
        kind = entry["resource"]["resourceType"]
        response = answered.get("response")
        found = _id_from_location(response.get("location")
                                  if isinstance(response, Mapping) else None, kind)
        if found is not None:
            ids[entry["fullUrl"]] = f"{kind}/{found}"
    if len(ids) != len(step):
        return Result(delivered=False, retryable=True, status=status,
                      error=f"{prefix}the transaction-response names no id for "
                            f"{len(step) - len(ids)} of {len(step)} entries")
    known.update(ids)
    return None


def _one(base: str, entry: Mapping[str, Any], way: How, known: dict[str, str], *,
         token: str | None, timeout: float, where: str) -> Result | None:
    """One entry on its own; its id goes into ``known``; the failure, if any."""
    kind = entry["resource"]["resourceType"]
    resource = rewrite_references(entry["resource"], known)
    query = way.match.resolve(known)
    if way.method == "search":
        found = _search(base, kind, query, token=token, timeout=timeout, where=where)
        if isinstance(found, Result):
            return found
        if found is not None:
            known[entry["fullUrl"]] = found
            return None
        created = _create(base, kind, resource, None, token=token, timeout=timeout,
                          where=where)
    else:
        created = _create(base, kind, resource, query, token=token, timeout=timeout,
                          where=where)
    if isinstance(created, Result):
        return created
    known[entry["fullUrl"]] = created
    return None


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
    found = search(url, kind, token=token, timeout=timeout, what=where)
    if isinstance(found, Result):
        return found
    matches, count = found
    if count == 0:
        return None
    if count > 1:
        return Result(delivered=False, retryable=False, status=200,
                      error=f"{where}: the EHR already holds {count} matches for its "
                            "identifier; not sent again")
    match_id = matches[0].get("id")
    if not isinstance(match_id, str) or not _ID.match(match_id):
        return Result(delivered=False, retryable=True, status=200,
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


def rewrite_references(node: Any, ids: Mapping[str, str]) -> Any:
    """``node`` with every ``reference`` found in ``ids`` replaced by its value: here,
    references to entries already sent point at the ids the EHR gave them (``verify``
    undoes that with the inverse mapping)."""
    if isinstance(node, list):
        return [rewrite_references(v, ids) for v in node]
    if not isinstance(node, Mapping):
        return node
    out = {k: rewrite_references(v, ids) for k, v in node.items()}
    reference = node.get("reference")
    if isinstance(reference, str) and reference in ids:
        out["reference"] = ids[reference]
    return out
