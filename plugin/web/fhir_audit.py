"""The audit trail on the FHIR API: ``GET /fhir/AuditEvent?patient=&agent=&date=&_count=``
and ``GET /fhir/AuditEvent/{id}``, for the privacy officer.

A blueprint nested in ``fhir_api.bp`` (under ``/fhir``, with its ``_format`` check),
following ``fhir_rest``'s conventions: strict parameters unless ``Prefer:
handling=lenient``, repeated parameters AND and commas OR, newest first, paged with
``_count``/``_offset`` and next links. Reading the audit trail is itself audited (a
search or read of AuditEvent by the requesting user) before anything is served.

Access: the admin role for a browser session, the scope ``AuditEvent.r``/``.s`` for an
access token, both declared beside each route (``auth.requires``, ``auth.requires_scope``)
and enforced by the one access guard.
"""
from __future__ import annotations

from flask import Blueprint, Response

from ..adapters import audit
from ..errors import NotFoundError
from .audit import audited_read, current_actor
from .auth import requires, requires_scope
from .errors import fhir_response
from .fhir_rest import (base_url, date_ranges, paging, patient_ids, register_converter,
                        search_args, searchset, split_values, store)

bp = Blueprint("audit_events", __name__)
bp.record_once(register_converter)

AUDIT = "AuditEvent"
#: ``agent`` is the requesting user's username; ``date`` the time recorded.
PARAMETERS = ("patient", "agent", "date", "_count", "_offset", "_format")


@bp.get(f"/{AUDIT}")
@requires_scope("AuditEvent", "s")
@requires("admin")
def search_audit_events() -> Response:
    """The AuditEvents about a patient, by a user, in a time range; newest first."""
    args, ignored = search_args(PARAMETERS, AUDIT)
    agents: set[str] | None = None
    recorded = []
    for name, value in args:
        if name == "agent":
            names = {v.strip() for v in split_values(value) if v.strip()}
            agents = names if agents is None else agents & names
        elif name == "date":
            recorded.append([r for v in split_values(value) for r in date_ranges(v, "date")])
    count, offset = paging(args)
    patients = patient_ids(args)
    total, page = audit.search(store().engine, patients=patients, agents=agents,
                               recorded=recorded, count=count, offset=offset)
    # audited after the query (so a search never lists itself) and before serving
    audited_read("search-type", actor=current_actor(), resource=AUDIT,
                 patient_id=next(iter(patients)) if patients and len(patients) == 1
                 else None)
    base = base_url()
    entries = [{"fullUrl": f"{base}/{AUDIT}/{event['id']}", "resource": event,
                "search": {"mode": "match"}} for event in page]
    return fhir_response(searchset(AUDIT, args, total=total, count=count, offset=offset,
                                   entries=entries, ignored=ignored))


@bp.get(f"/{AUDIT}/<fhir_id:id_>")
@requires_scope("AuditEvent", "r")
@requires("admin")
def read_audit_event(id_: str) -> Response:
    """One AuditEvent, by the id its search entry gives."""
    event = audit.read(store().engine, id_)
    audited_read("read", actor=current_actor(), resource=f"{AUDIT}/{id_}")
    if event is None:
        raise NotFoundError(f"{AUDIT}/{id_} is not known to this server.")
    return fhir_response(event)
