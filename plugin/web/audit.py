"""The read side of the audit trail at the web edge: ``audited_read`` (and the three
helpers over it), what every view that serves patient data calls before serving it.

Writes are audited by the use cases, in the same transaction as the write
(``adapters.audit.append``). A read has no transaction to share, so the edge writes its
AuditEvent first, committed, and only then builds the answer. If the audit record
cannot be written, ``audited_read`` raises ``AuditUnavailable`` (an UnavailableError),
which ``web.errors`` answers with 503: an OperationOutcome under ``/fhir``, a plain
error page elsewhere. Nothing is ever served unaudited.

Views call the three helpers below, never the builders: ``read_of`` (a read or vread of
one resource of one patient), ``search_of`` (BALP PatientQuery: one event per patient
whose data a search served) and ``refused_read`` (a read of a known patient's data
refused as not found: BALP's failure pattern). Each is called once the view knows whose
data it is and before it renders; a redirect serves nothing and is not audited.

Who asked: ``current_actor()``, the signed-in user the access guard (``web.auth``) left
in ``flask.g`` under ``ACTOR_KEY`` for the request; None means no user (a machine
client).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from flask import current_app, g, request

from ..adapters import audit, store as store_mod
from ..core import audit_events, outcome
from ..core.audit_events import Actor, Failure

#: Where the access guard leaves the signed-in user (an Actor) for the request.
ACTOR_KEY = "audit_actor"


def current_actor() -> Actor | None:
    """The signed-in user of this request, as the guard left it; None without one."""
    actor = g.get(ACTOR_KEY)
    return actor if isinstance(actor, Actor) else None


def audited_read(interaction: str, *, actor: Actor | None, resource: str | None = None,
                 patient_id: str | None = None, query: str | None = None,
                 client: str | None = None, failure: Failure | None = None) -> None:
    """Write the AuditEvent of a read now, before anything is served.

    ``interaction`` is a BALP REST interaction (``read``, ``vread``, ``search-type``);
    ``resource`` what is read (``Type/id``; for a search the type), ``patient_id`` whose
    data it is, ``query`` the raw query string of a search (default: this request's),
    ``client`` the client agent (default: a FHIR API client under ``/fhir``, else the
    tablet's web browser).
    The network address is the request's (``remote_addr``: put the deployment's proxy
    fix in front when behind a load balancer). ``failure``: the read was refused (BALP's
    failure pattern: the outcome and the OperationOutcome answered). Raises
    ``audit.AuditUnavailable`` (503) when the event cannot be written: the caller must
    then serve nothing.
    """
    _write([_rest(interaction, actor=actor, resource=resource, patient_id=patient_id,
                  query=query, client=client, failure=failure)])


def _rest(interaction: str, *, actor: Actor | None, resource: str | None,
          patient_id: str | None, query: str | None = None, client: str | None = None,
          failure: Failure | None = None) -> dict[str, Any]:
    if interaction == "search-type" and query is None:
        query = request.query_string.decode("utf-8", "replace")
    return audit_events.rest(interaction, actor=actor, address=request.remote_addr,
                             recorded=dt.datetime.now(dt.timezone.utc), resource=resource,
                             patient_id=patient_id, query=query,
                             client=client or _client(), failure=failure)


def _write(events: list[dict[str, Any]]) -> None:
    audit.write(store_mod.from_app(current_app).engine, *events)


def _client() -> str:
    """Who the client agent is: the FHIR API's callers, or the tablet's browser."""
    path = request.path
    return "FHIR API client" if path == "/fhir" or path.startswith("/fhir/") else "web browser"


def read_of(resource: str, patient_id: str | None, *, interaction: str = "read") -> None:
    """Audit the signed-in user's read of ``resource`` (``Type/id``) of ``patient_id``,
    now, before it is served: the one call every view serving patient data makes once
    it knows whose data it is and just before it renders (503 if it cannot be written)."""
    audited_read(interaction, actor=current_actor(), resource=resource,
                 patient_id=patient_id)


def search_of(resource_type: str, patient_ids: Iterable[str | None]) -> None:
    """Audit a search of ``resource_type`` whose served results belong to
    ``patient_ids``: BALP PatientQuery, one event per distinct patient found (in the
    order found); a search that found nobody's data still leaves one Query event."""
    found = list(dict.fromkeys(p for p in patient_ids if p))
    actor = current_actor()
    _write([_rest("search-type", actor=actor, resource=resource_type, patient_id=patient_id)
            for patient_id in found or [None]])  # one transaction: all of them or a 503


def refused_read(resource: str, patient_id: str, message: str, *,
                 interaction: str = "read", code: str = "not-found") -> None:
    """Audit a read of a named patient's data that is refused as not found (a revision,
    version or Observation that a known exam does not have; ``code`` "deleted" for one an
    amendment removed): BALP's failure pattern, outcome 4 (minor failure) with the
    OperationOutcome the refusal carries. The caller then answers its 404 (or 410); if
    even this cannot be written, 503."""
    audited_read(interaction, actor=current_actor(), resource=resource,
                 patient_id=patient_id,
                 failure=Failure(audit_events.MINOR_FAILURE,
                                 outcome.simple("error", code, message)))
