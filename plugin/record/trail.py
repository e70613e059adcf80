"""The audit side of the record's write use cases: who asked (``By``) and the AuditEvent
each write leaves (BALP RESTful create/update, ``core.audit_events.rest``).

Every write use case in ``record.exams`` takes ``by`` and hands the store the event of
its write; the store appends it inside the write's own transaction (``Store.*(...,
audit=...)``), so a write and its audit commit together or not at all: a write whose
audit cannot be appended is rolled back (``adapters.audit.AuditUnavailable``, 503 at the
web edge).

Who: the web passes the signed-in user (``web.audit.current_actor()``) and the request's
network address; the command line passes ``COMMAND_LINE`` (no user, no address: BALP
lets the client agent alone name the requestor; the operator is whoever runs the
command on the server). The resource is ``QuestionnaireResponse/<exam id>`` (a signature
names its revision, ``.../_history/<n>``) or ``Patient/<id>``; the data entity's
``description`` says which write it was (no patient data: a fixed phrase).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core import audit_events
from ..core.audit_events import Actor


@dataclass(frozen=True)
class By:
    """Who asks for a write: the signed-in user (None: a machine or the command line),
    the network address the request came from, and the client's name."""

    actor: Actor | None
    address: str | None
    client: str = "web browser"


#: The command line (and anything run on the server without a signed-in user).
COMMAND_LINE = By(None, None, "command line")


def event(by: By, interaction: str, *, resource: str, patient_id: str | None,
          what: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """The AuditEvent of one write: ``interaction`` create or update, ``what`` the fixed
    phrase naming the write (e.g. "draft saved")."""
    built = audit_events.rest(interaction, actor=by.actor, address=by.address,
                              recorded=now or dt.datetime.now(dt.timezone.utc),
                              resource=resource, patient_id=patient_id, client=by.client)
    for entity in built.get("entity") or []:
        if (entity.get("what") or {}).get("reference") == resource:
            entity["description"] = what
    return built


def exam_write(by: By, interaction: str, what: str, *, revision: bool = False
               ) -> Callable[[Any], list[Mapping[str, Any]]]:
    """The store's ``audit`` for a write to an exam: given the exam as written, its
    event (naming the signed revision when ``revision``)."""
    def events(exam: Any) -> list[Mapping[str, Any]]:
        resource = f"QuestionnaireResponse/{exam.id}"
        if revision:
            resource += f"/_history/{exam.revisions}"
        return [event(by, interaction, resource=resource, patient_id=exam.patient_id,
                      what=what)]
    return events
