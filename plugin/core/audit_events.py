"""AuditEvents: who read or changed which patient's record, when, from where, and how it ended.

Shaped per IHE Basic Audit Log Patterns 1.1.4 (BALP, shared/fhir.md §10.1) for the RESTful
interactions (``rest``: create, read/vread, update/patch, delete, search, each with the
patient when there is one); BALP profiles no login, so sign-in and sign-out follow the FHIR
core examples (DCM 110114 User Authentication, 110122 Login / 110123 Logout); lock-out and
user administration are DCM 110113 Security Alert events (110137 User Security Attributes
Changed, 110136 Security Roles Changed); delivery to the EHR is DCM 110106 Export.

Every event names:

- the **agents**: the user (``Actor``; requestor, with the network address the request
  came from), the client and this server (BALP's client/server pair, their role codes
  depending on the direction of the data);
- the **entities**: the patient (``Patient/<id>``, BALP's ``Patient*`` variants) and the
  resource (or, for a search, the query itself, base64 as BALP asks);
- the **action** (C R U D E), the **outcome** (0 success; 4, 8, 12 failures) and, on a
  failure, the OperationOutcome that was answered (``outcomeDesc`` its text, and the
  resource itself as an entity detail).

Pure: plain dicts out, nothing stored here (``adapters.audit`` stores them).
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from . import terminology as t

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SECURITY_ROLE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
NETWORK_IP = "2"  # AuditEvent.agent.network.type: IP address
#: Users are named by username in this system (the identifier of the requestor agent).
USER_SYSTEM = f"{t.BASE}/id/user"
#: API clients (SMART Backend Services integrators) are named by their OAuth client_id.
CLIENT_SYSTEM = f"{t.BASE}/id/api-client"
#: IHE's transaction codes: ITI-71 is "Get Access Token" (BALP AuditIUAgetAccessToken).
IHE_EVENT = "urn:ihe:event-type-code"
SERVER = "Posterior thigh exam plugin"

#: BALP's RESTful profiles: interaction -> (action, client role, server role, user role).
REST = {
    "create": ("C", "110153", "110152", "AUT"),
    "read": ("R", "110152", "110153", "IRCP"),
    "vread": ("R", "110152", "110153", "IRCP"),
    "history-instance": ("R", "110152", "110153", "IRCP"),
    "update": ("U", "110153", "110152", "AUT"),
    "patch": ("U", "110153", "110152", "AUT"),
    "delete": ("D", "110150", "custodian", "AUT"),
    "search-type": ("E", "110153", "110152", "IRCP"),
}
_ROLES = {
    "110150": (DCM, "Application"), "110152": (DCM, "Destination Role ID"),
    "110153": (DCM, "Source Role ID"),
    "custodian": ("http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                  "Custodian"),
    "AUT": (PARTICIPATION, "author (originator)"), "IRCP": (PARTICIPATION, "information recipient"),
    "humanuser": (SECURITY_ROLE, "human user"),
}
#: Outcome codes (R4 AuditEvent.outcome).
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE = "0", "4", "8", "12"
Action = Literal["C", "R", "U", "D", "E"]


@dataclass(frozen=True)
class Actor:
    """The signed-in user, as the audit trail (and the signature) name them.

    The integration builds one from its user record: ``username`` (unique, what the
    audit searches by), ``display`` (the name people read), ``practitioner_id`` (the id
    of the user's Practitioner, ``GET /fhir/Practitioner/{id}``; None for a user who
    never signs, e.g. an admin only) and ``role`` (clinician, assistant or admin).

    A machine client of the FHIR API (a registered integrator calling with an access
    token) is an Actor too, ``kind`` "client": ``username`` its client_id, ``display``
    its registered name; events name it as the client agent (there is no user).
    """

    username: str
    display: str
    practitioner_id: str | None
    role: str
    kind: Literal["user", "client"] = "user"


def client_actor(client_id: str, name: str) -> Actor:
    """A registered API client as the audit trail names it."""
    return Actor(username=client_id, display=name, practitioner_id=None, role="system",
                 kind="client")


@dataclass(frozen=True)
class Failure:
    """How an audited request failed: the outcome code and the OperationOutcome answered."""

    outcome: str
    operation_outcome: Mapping[str, Any]


def rest(interaction: str, *, actor: Actor | None, address: str | None,
         recorded: dt.datetime, resource: str | None = None, patient_id: str | None = None,
         query: str | None = None, failure: Failure | None = None,
         client: str = "web browser") -> dict[str, Any]:
    """A BALP RESTful event: ``interaction`` one of REST's keys, ``resource`` the
    ``Type/id`` read or written (None for a search, which gives its ``query``: the raw
    query string), ``patient_id`` the patient whose data it is (BALP ``Patient*``)."""
    if interaction not in REST:
        raise ValueError(f"unknown interaction {interaction!r}; one of {', '.join(REST)}")
    action, client_role, server_role, user_role = REST[interaction]
    if actor is not None and actor.kind == "client":  # the registered client asked
        agents = [_agent(client_role, _client_who(actor.username, actor.display),
                         requestor=True, address=address)]
    else:
        agents = [_user(actor, user_role, address)] if actor else []
        agents.append(_agent(client_role, {"display": client}, requestor=actor is None,
                             address=address))
    agents.append(_agent(server_role, {"display": SERVER}, requestor=False))
    entities = [_patient(patient_id)] if patient_id else []
    if interaction == "search-type":
        entities.append(_query(resource or "", query or ""))
    elif resource:
        entities.append(_data(resource))
    return _event(_coding(EVENT_TYPE, "rest", "RESTful Operation"),
                  [_coding(RESTFUL, interaction, interaction)], action, recorded, agents,
                  entities, failure)


def login(*, username: str, actor: Actor | None, address: str | None,
          recorded: dt.datetime, failure: Failure | None = None) -> dict[str, Any]:
    """A sign-in, or a failed attempt (``failure``; ``actor`` None for an unknown user:
    the name typed is still recorded, as the attempt's identifier)."""
    return _authentication("110122", "Login", username, actor, address, recorded, failure)


def logout(*, actor: Actor, address: str | None, recorded: dt.datetime) -> dict[str, Any]:
    """A sign-out (or a session ended by the idle timeout: ``address`` None)."""
    return _authentication("110123", "Logout", actor.username, actor, address, recorded, None)


def lockout(*, username: str, address: str | None, recorded: dt.datetime,
            until: dt.datetime) -> dict[str, Any]:
    """An account locked after repeated failed sign-ins, until ``until``."""
    agents = [_named_user(username, None, "humanuser", address),
              _agent("110153", {"display": SERVER}, requestor=False)]
    entity = _user_entity(username)
    entity["description"] = f"locked until {_instant(until)} after repeated failed sign-ins"
    return _event(_coding(DCM, "110113", "Security Alert"),
                  [_coding(DCM, "110137", "User Security Attributes Changed")], "E",
                  recorded, agents, [entity], None)


def user_administration(change: Literal["add", "disable", "set-password", "role"], *,
                        username: str, actor: Actor | None, address: str | None,
                        recorded: dt.datetime, failure: Failure | None = None,
                        ) -> dict[str, Any]:
    """An administrator (or the command line: ``actor`` None) added a user, disabled
    one, set a password or changed a role."""
    subtype = _coding(DCM, "110136", "Security Roles Changed") if change == "role" \
        else _coding(DCM, "110137", "User Security Attributes Changed")
    agents = [_user(actor, "AUT", address)] if actor else \
        [_agent("110150", {"display": "command line"}, requestor=True)]
    agents.append(_agent("110153", {"display": SERVER}, requestor=False))
    entity = _user_entity(username)
    entity["description"] = change
    return _event(_coding(DCM, "110113", "Security Alert"), [subtype],
                  "C" if change == "add" else "U", recorded, agents, [entity], failure)


def access_token(*, client_id: str, client_name: str | None, address: str | None,
                 recorded: dt.datetime, scope: str | None = None,
                 failure: Failure | None = None) -> dict[str, Any]:
    """An access token asked for at the token endpoint (SMART Backend Services): issued
    with ``scope``, or refused (``failure``). BALP's AuditIUAgetAccessToken: DCM 110114
    User Authentication, subtype ITI-71. ``client_id`` is the one the assertion claims
    (``client_name`` None when no such client is registered)."""
    agents = [_agent("110153", _client_who(client_id, client_name), requestor=True,
                     address=address),
              _agent("110152", {"display": SERVER}, requestor=False)]
    entities = [{"what": {"identifier": {"system": CLIENT_SYSTEM, "value": client_id}},
                 "type": _coding(ENTITY_TYPE, "2", "System Object"),
                 "description": f"access token for {scope}" if scope else "access token"}]
    return _event(_coding(DCM, "110114", "User Authentication"),
                  [_coding(IHE_EVENT, "ITI-71", "Get Access Token")], "E", recorded, agents,
                  entities, failure)


def delivery(*, ehr_base: str, resource: str, patient_id: str | None,
             recorded: dt.datetime, failure: Failure | None = None) -> dict[str, Any]:
    """A signed record sent to the EHR (DCM 110106 Export): this service the source,
    the EHR at ``ehr_base`` the destination."""
    agents = [_agent("110153", {"display": SERVER}, requestor=True),
              _agent("110152", {"display": ehr_base}, requestor=False, address=_host(ehr_base))]
    entities = ([_patient(patient_id)] if patient_id else []) + [_data(resource)]
    return _event(_coding(DCM, "110106", "Export"), [], "R", recorded, agents, entities,
                  failure)


# --- parts ----------------------------------------------------------------------------------

def _event(type_: dict[str, str], subtype: list[dict[str, str]], action: Action,
           recorded: dt.datetime, agents: list[dict[str, Any]], entities: list[dict[str, Any]],
           failure: Failure | None) -> dict[str, Any]:
    event: dict[str, Any] = {"resourceType": "AuditEvent", "id": str(uuid.uuid4()),
                             "type": type_}
    if subtype:
        event["subtype"] = subtype
    event.update(action=action, recorded=_instant(recorded),
                 outcome=failure.outcome if failure else SUCCESS)
    if failure:
        event["outcomeDesc"] = _outcome_text(failure.operation_outcome)
        entities = [*entities, {
            "type": _coding(ENTITY_TYPE, "2", "System Object"),
            "description": "the OperationOutcome answered",
            "detail": [{"type": "OperationOutcome", "valueBase64Binary": base64.b64encode(
                json.dumps(failure.operation_outcome, separators=(",", ":"),
                           ensure_ascii=False).encode("utf-8")).decode("ascii")}]}]
    event["agent"] = agents
    event["source"] = {"observer": {"display": SERVER},
                       "type": [_coding(SOURCE_TYPE, "4", "Application Server")]}
    if entities:
        event["entity"] = entities
    return event


def _authentication(code: str, display: str, username: str, actor: Actor | None,
                    address: str | None, recorded: dt.datetime,
                    failure: Failure | None) -> dict[str, Any]:
    user = _named_user(username, actor, "humanuser", address)
    agents = [user, _agent("110153", {"display": SERVER}, requestor=False)]
    return _event(_coding(DCM, "110114", "User Authentication"),
                  [_coding(DCM, code, display)], "E", recorded, agents, [], failure)


def _user(actor: Actor, role: str, address: str | None) -> dict[str, Any]:
    return _named_user(actor.username, actor, role, address)


def _named_user(username: str, actor: Actor | None, role: str,
                address: str | None) -> dict[str, Any]:
    who: dict[str, Any] = {"identifier": {"system": USER_SYSTEM, "value": username}}
    if actor is not None and actor.practitioner_id:
        who["reference"] = f"Practitioner/{actor.practitioner_id}"
    if actor is not None:
        who["display"] = actor.display
    agent = _agent(role, who, requestor=True, address=address)
    if actor is not None:
        agent["role"] = [{"text": actor.role}]
    return agent


def _client_who(client_id: str, name: str | None) -> dict[str, Any]:
    who: dict[str, Any] = {"identifier": {"system": CLIENT_SYSTEM, "value": client_id}}
    if name:
        who["display"] = name
    return who


def _agent(role: str, who: dict[str, Any], *, requestor: bool,
           address: str | None = None) -> dict[str, Any]:
    system, display = _ROLES[role]
    agent: dict[str, Any] = {"type": {"coding": [_coding(system, role, display)]}, "who": who,
                             "requestor": requestor}
    if address:
        agent["network"] = {"address": address, "type": NETWORK_IP}
    return agent


def _patient(patient_id: str) -> dict[str, Any]:
    return {"what": {"reference": f"Patient/{patient_id}"},
            "type": _coding(ENTITY_TYPE, "1", "Person"),
            "role": _coding(OBJECT_ROLE, "1", "Patient")}


def _data(resource: str) -> dict[str, Any]:
    return {"what": {"reference": resource},
            "type": _coding(ENTITY_TYPE, "2", "System Object"),
            "role": _coding(OBJECT_ROLE, "4", "Domain Resource")}


def _query(resource_type: str, query: str) -> dict[str, Any]:
    entity = {"type": _coding(ENTITY_TYPE, "2", "System Object"),
              "role": _coding(OBJECT_ROLE, "24", "Query"),
              "query": base64.b64encode(query.encode("utf-8")).decode("ascii")}
    if resource_type:
        entity["description"] = f"search of {resource_type}"
    return entity


def _user_entity(username: str) -> dict[str, Any]:
    return {"what": {"identifier": {"system": USER_SYSTEM, "value": username}},
            "type": _coding(ENTITY_TYPE, "1", "Person"),
            "role": _coding(OBJECT_ROLE, "11", "Security User Entity")}


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _outcome_text(operation_outcome: Mapping[str, Any]) -> str:
    issues: Sequence[Any] = operation_outcome.get("issue") or []
    texts = [str((i.get("details") or {}).get("text") or i.get("diagnostics") or i.get("code"))
             for i in issues if isinstance(i, Mapping)]
    return "; ".join(texts) or "failed"


def _host(url: str) -> str | None:
    return urlsplit(url).hostname


def _instant(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("an audit time needs a timezone")
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")
