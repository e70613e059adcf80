"""The FHIR API's token clients at the guard: who the access token names, and whether
its scopes cover what the route declares (SMART v2 scopes, shared/fhir.md §4.2).

``check`` is called by the one guard (``web.auth``) for every non-open request under
``/fhir`` that carries an ``Authorization`` header. The token must be a live one issued
by our token endpoint (``web.oauth_token``) for this FHIR base, its client still
enabled; then the route's declared need (``@requires_scope``) must be among the granted
scopes. Refusals are OperationOutcomes with ``WWW-Authenticate`` in RFC 6750's terms:
401 ``invalid_token`` (unknown, expired, revoked, another server's), 403
``insufficient_scope`` naming the scope the route needs. A route under ``/fhir`` with no
declared scope is refused to every token (fail closed; tests/web/test_guard.py makes
sure none is left undeclared).

An accepted call is audited by its view as usual, with the client as the agent (the
Actor of ``kind`` "client" left in ``flask.g``); a call refused for its scope, or for
its token (no bearer token, or one unknown, expired, revoked or another server's), is
audited here as a failed access (outcome 8) with the network address: an attempt with a
stolen or stale token is exactly what the trail is for. The token value is never
written; an unknown token's agent is "unknown client".

``route_scopes`` lists every declared need with its route, for the CapabilityStatement
and the README's table (a test keeps the two in agreement).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request

from ..adapters import clients, store as store_mod
from ..core import outcome
from ..core.audit_events import SERIOUS_FAILURE, Failure, client_actor
from ..core.scopes import Need, allows, render
from .audit import ACTOR_KEY, audited_read, current_actor
from .errors import FHIR_PREFIX, fhir_response
from .fhir_rest import base_url

REALM = "posterior-thigh-exam"


@dataclass(frozen=True)
class RouteScope:
    """One route's need, as integrators read it: ``GET /fhir/Observation`` (search)
    needs ``system/Observation.s``."""

    method: str
    path: str
    label: str
    need: Need


def check(need: Need | None) -> Response | None:
    """None when the request's token may reach a route needing ``need``; else the
    refusal to answer."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorised(need, "invalid_request", "Send the access token as "
                             "'Authorization: Bearer <token>'.")
    now = dt.datetime.now(dt.timezone.utc)
    grant = clients.grant_of(store_mod.from_app(current_app), token.strip(), now=now)
    if grant is None:
        return _unauthorised(need, "invalid_token", "The access token is unknown, expired "
                             "or revoked; ask the token endpoint for a new one.")
    g.setdefault(ACTOR_KEY, client_actor(grant.client.id, grant.client.name))
    if grant.audience != base_url():  # the client is known: the trail names it
        return _unauthorised(need, "invalid_token", "The access token was issued for "
                             "another FHIR server.")
    if need is None:
        return _refuse(403, "insufficient_scope", "This endpoint is not open to access "
                       "tokens.")
    if not allows(grant.scopes, need):
        message = (f"This needs the scope {need} (or a wider one such as "
                   f"system/*.{need.permission}); the token was granted "
                   f"{render(grant.scopes)}.")
        _audit_denial(need, message)
        return _refuse(403, "insufficient_scope", message, scope=str(need))
    return None


#: The BALP interaction a refused call would have been, by the permission it needed.
_INTERACTIONS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search-type"}


#: The client agent of a call whose token names no client we know.
UNKNOWN_CLIENT = "unknown client"


def _unauthorised(need: Need | None, error: str, message: str) -> Response:
    """Refuse a call for its token (401), audited first as a failed access (BALP's
    failure pattern, outcome 8) with no patient: nothing was served. The agent is the
    client the token names, else ``UNKNOWN_CLIENT`` at the request's address."""
    audited_read(_interaction(need), actor=current_actor(), client=UNKNOWN_CLIENT,
                 resource=_target(need),
                 failure=Failure(SERIOUS_FAILURE, outcome.simple("error", "login", message)))
    return _refuse(401, error, message)


def _interaction(need: Need | None) -> str:
    if need is not None:
        return _INTERACTIONS[need.permission]
    return "read" if request.method in ("GET", "HEAD") else "create"


def _target(need: Need | None) -> str:
    """What the call was for: the type of a search, else the path under /fhir."""
    if need is not None and need.permission == "s":
        return need.resource
    return request.path.removeprefix(FHIR_PREFIX + "/")


def _audit_denial(need: Need, message: str) -> None:
    """A call refused for its scope is audited as the failed interaction (BALP's failure
    pattern, outcome 8: the client was denied), with the client as the agent."""
    audited_read(_INTERACTIONS[need.permission], actor=current_actor(),
                 resource=_target(need),
                 failure=Failure(SERIOUS_FAILURE, outcome.simple("error", "forbidden", message)))


def _refuse(status: int, error: str, message: str, *, scope: str | None = None) -> Response:
    code = "forbidden" if status == 403 else "login"
    challenge = f'Bearer realm="{REALM}", error="{error}"'
    if scope:
        challenge += f', scope="{scope}"'
    return fhir_response(outcome.simple("error", code, message), status,
                         headers={"WWW-Authenticate": challenge})


def route_scopes(app: Flask) -> list[RouteScope]:
    """Every FHIR API route with a declared need, in path order."""
    found = []
    for rule in app.url_map.iter_rules():
        need = getattr(app.view_functions[rule.endpoint], "required_scope", None)
        if need is None:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append(RouteScope(method, rule.rule, _label(rule.rule, need), need))
    return sorted(found, key=lambda r: (r.need.resource, r.path, r.method))


def _label(path: str, need: Need) -> str:
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if last.startswith("$"):
        return last
    if "/_history" in path:
        return "history" if last == "_history" else "vread"
    return "search" if need.permission == "s" else "read"


def documentation(app: Flask) -> dict[str, list[tuple[str, str]]]:
    """Per resource type: (interaction or operation, scope), for the CapabilityStatement."""
    notes: dict[str, list[tuple[str, str]]] = {}
    for route in route_scopes(app):
        resource = route.path.removeprefix(FHIR_PREFIX + "/").split("/", 1)[0]
        entry = (route.label, str(route.need))
        if entry not in notes.setdefault(resource, []):
            notes[resource].append(entry)
    return notes
