"""The EHR's FHIR API, as far as write-back needs it: deliver one record (a Bundle).

The record is a transaction Bundle of conditional creates (``ifNoneExist``) on
identifiers the plugin owns, so a delivery that timed out, whose answer was lost or
whose worker died halfway can simply be sent again: what the EHR already holds is
matched, not duplicated (fhir.md section 7.2). EHRs differ in what they accept, hence
the profiles (setting ``EHR_PROFILE``, ``ehr_profiles``):

- ``"transaction"``: the Bundle as transactions (one, or dependency-ordered steps of at
  most ``EHR_TRANSACTION_MAX_ENTRIES`` entries: ``ehr_steps``). The EHR itself honours
  each entry's ``ifNoneExist``.
- ``"individual"``: the same entries one by one.
- ``"document-only"``: only the DocumentReferences (the rendered PDFs) and their
  Provenance (``ehr_profiles`` says why).
- ``"auto"``: the ways the EHR's CapabilityStatement allows (``ehr_capability``), tried
  in that order. A refusal of the request's *shape* (``ehr_refusals``: a transaction
  too large, a query or a type the server does not take that way) makes ``auto`` send
  the same record the next way at once, and the EHR's ``memory`` keeps what worked (the
  way, the entry limit learned) for the next records; a refusal of the *content* is
  final, as is an unknown refusal met a second time. A transaction refused as too large
  is sent again in steps of the limit the refusal names, else half its size.

Before any of it, a record whose patient was typed on the tablet gets the EHR's own
Patient (``ehr_patient``), or waits for a person to confirm it.

The requests themselves and their failures in words: ``ehr_http``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from . import ehr_patient, ehr_refusals
from .ehr_capability import Capabilities, CapabilityError, ways_for
from .ehr_http import Result
from .ehr_profiles import SETTINGS
from .ehr_steps import plan, send

__all__ = ["Memory", "deliver", "post_transaction"]


class Memory(Protocol):
    """What is remembered of one EHR between deliveries (``ehr_servers``): the way that
    last worked and the transaction entry limit learned."""

    way: str | None
    limit: int | None

    def remember(self, way: str | None, limit: int | None) -> None: ...


def deliver(base_url: str, bundle: Mapping[str, Any], *, token: str | None = None,
            timeout: float, profile: str = "transaction",
            capabilities: Capabilities | None = None, sent: Mapping[str, str] | None = None,
            limit: int | None = None, memory: Memory | None = None,
            patient: ehr_patient.Facts | None = None) -> Result:
    """Deliver ``bundle`` under ``profile`` (one of ``SETTINGS``); ``auto`` reads the
    CapabilityStatement through ``capabilities`` (a fresh read when None).

    ``sent``: what earlier attempts got into the EHR (not sent again); ``limit``: the
    most entries per transaction (``EHR_TRANSACTION_MAX_ENTRIES``; None: what ``memory``
    learned, else no limit); ``patient``: who the record is about, for a record naming
    its patient only by identifier (``ehr_patient``)."""
    if profile not in SETTINGS:
        raise ValueError(f"EHR_PROFILE must be one of {', '.join(SETTINGS)}, not {profile!r}")
    statement = None
    if profile == "auto" or (patient is not None and ehr_patient.needed(bundle)):
        capabilities = capabilities or Capabilities(base_url, timeout=timeout, ttl=0)
        try:
            statement = capabilities.statement(token)
        except CapabilityError as error:
            return error.result
    if patient is not None and ehr_patient.needed(bundle):
        found = ehr_patient.find(base_url, patient, statement, token=token, timeout=timeout)
        if isinstance(found, Result):
            return found
        bundle = ehr_patient.literal(bundle, found)
    limit = limit or (memory.limit if memory is not None else None)
    if profile != "auto":
        try:
            chosen = plan(bundle, None, documents_only=profile == "document-only")
        except ValueError as error:
            return Result(delivered=False, retryable=False, error=str(error))
        result, _ = send(base_url, chosen, transaction=profile != "individual",
                         limit=limit, sent=sent or {}, token=token, timeout=timeout,
                         profile=profile)
        return result
    assert statement is not None
    try:
        ways = ways_for(statement, bundle)
    except ValueError as error:  # no safe way: retrying would not change it
        return Result(delivered=False, retryable=False, error=str(error))
    return _auto(base_url, bundle, statement, ways, token=token, timeout=timeout,
                 sent=dict(sent or {}), limit=limit, memory=memory)


def _auto(base_url: str, bundle: Mapping[str, Any], statement: Mapping[str, Any],
          ways: list[str], *, token: str | None, timeout: float, sent: dict[str, str],
          limit: int | None, memory: Memory | None) -> Result:
    """Each way in turn, from the one ``memory`` says worked, until one delivers."""
    if memory is not None and memory.way in ways:
        ways = ways[ways.index(memory.way):]
    tried: list[str] = []
    unknown_seen = False
    while True:
        way = ways[0]
        try:
            chosen = plan(bundle, statement, documents_only=way == "document-only")
        except ValueError as error:
            return Result(delivered=False, retryable=False, error=str(error))
        result, refused = send(base_url, chosen, transaction=way == "transaction",
                               limit=limit, sent=sent, token=token, timeout=timeout,
                               profile=way)
        sent = dict(result.sent)
        if result.delivered:
            if memory is not None and (memory.way, memory.limit) != (way, limit):
                memory.remember(way, limit)
            return result
        refusal = ehr_refusals.kind(result)
        final = refusal == ehr_refusals.CONTENT or (
            refusal == ehr_refusals.UNKNOWN and unknown_seen) or not refused
        if refusal == ehr_refusals.TRANSIENT or final:
            return _with_tried(result, tried) if refusal != ehr_refusals.TRANSIENT \
                else result
        unknown_seen = unknown_seen or refusal == ehr_refusals.UNKNOWN
        tried.append(f"{way}: {result.error}")
        if way == "transaction" and refused > 1 and ehr_refusals.too_large(result):
            limit = ehr_refusals.entry_limit(result, refused)
        elif len(ways) > 1:
            ways = ways[1:]
        else:
            return _with_tried(result, tried[:-1])
        if memory is not None:
            memory.remember(ways[0], limit)


def _with_tried(result: Result, tried: list[str]) -> Result:
    """A final refusal, naming the ways refused before it."""
    if not tried:
        return replace(result, retryable=False)
    return replace(result, retryable=False,
                   error=f"{result.error} (after: {'; '.join(tried)})")


def post_transaction(base_url: str, bundle: Mapping[str, Any], *, token: str | None = None,
                     timeout: float, profile: str = "transaction") -> Result:
    """POST ``bundle`` (adapted to ``profile``) as one transaction."""
    return deliver(base_url, bundle, token=token, timeout=timeout, profile=profile)
