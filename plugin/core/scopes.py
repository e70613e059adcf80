"""SMART v2 scopes (shared/fhir.md §4.2) as this server grants and checks them.

A scope is ``system/<Type or *>.<permissions>``, the permissions an in-order subset of
``cruds`` (create, read, update, delete, search). Only ``system/`` scopes exist here:
the integrators of the FHIR API are backend services (SMART Backend Services), never a
user or a patient launching an app. Scope constraints (``?category=…``) are not
supported, so a scope carrying one is refused rather than read as wider than it is.

The resource types are the ones the API serves: a registered scope for any other type
could never be used, and is far more likely a typo than a plan.

Pure: strings in, frozen records out; ``ScopeError`` (an InputError) names the scope.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InputError

#: The resource types the FHIR API serves, and ``*`` (all of them).
RESOURCE_TYPES = ("AuditEvent", "CodeSystem", "Observation", "Patient", "Practitioner",
                  "Questionnaire", "QuestionnaireResponse")
PERMISSIONS = "cruds"
#: The only context a backend service gets (no user, no patient launch).
CONTEXT = "system"
_SYNTAX = re.compile(r"(?P<context>[a-z]+)/(?P<type>\*|[A-Za-z]+)\.(?P<perms>[a-z]+)")


class ScopeError(InputError):
    """A scope this server cannot grant: the message names it and says why."""


@dataclass(frozen=True)
class Scope:
    """One scope: a resource type (or ``*``) and its permissions, in ``cruds`` order."""

    resource: str
    permissions: str

    def __str__(self) -> str:
        return f"{CONTEXT}/{self.resource}.{self.permissions}"

    def covers(self, resource: str) -> bool:
        return self.resource in ("*", resource)


@dataclass(frozen=True)
class Need:
    """What one API route needs: a permission letter on a resource type."""

    resource: str
    permission: str

    def __str__(self) -> str:
        return f"{CONTEXT}/{self.resource}.{self.permission}"


def parse(text: str) -> Scope:
    """One scope; ScopeError naming it when it is not a ``system/`` v2 scope we serve."""
    if not isinstance(text, str) or len(text) > 200:
        raise ScopeError("A scope must be a short string such as system/Observation.rs.")
    if "?" in text:
        raise ScopeError(f"{text}: scope constraints (?param=value) are not supported.")
    match = _SYNTAX.fullmatch(text)
    if match is None:
        raise ScopeError(f"{text}: not a SMART v2 scope; expected "
                         "system/<ResourceType or *>.<an in-order subset of cruds>.")
    if match["context"] != CONTEXT:
        raise ScopeError(f"{text}: only system/ scopes are granted here (backend services).")
    if match["type"] != "*" and match["type"] not in RESOURCE_TYPES:
        raise ScopeError(f"{text}: {match['type']} is not a resource type this server "
                         f"serves ({', '.join(RESOURCE_TYPES)}, or *).")
    perms = match["perms"]
    if not _in_order_subset(perms):
        raise ScopeError(f"{text}: the permissions must be an in-order subset of cruds "
                         "(e.g. rs, cr, cruds).")
    return Scope(match["type"], perms)


def parse_all(text: str) -> tuple[Scope, ...]:
    """A space-separated list of scopes (at least one), each checked by ``parse``."""
    words = (text or "").split()
    if not words:
        raise ScopeError("No scope given; e.g. system/Observation.rs.")
    return tuple(dict.fromkeys(parse(word) for word in words))


def render(scopes: Iterable[Scope]) -> str:
    """Scopes as the space-separated string OAuth exchanges."""
    return " ".join(str(s) for s in scopes)


def grant(requested: Iterable[Scope], registered: Iterable[Scope]) -> tuple[Scope, ...]:
    """What a token gets: each requested scope narrowed to the permissions the client's
    registered scopes give on its type (a registered ``*`` covers every type; a
    requested ``*`` only what is registered for ``*``). Scopes left with no permission
    are dropped; an empty result means nothing requested may be granted."""
    registered = tuple(registered)
    granted = []
    for scope in requested:
        allowed = {p for r in registered if r.resource in ("*", scope.resource)
                   for p in r.permissions}
        perms = "".join(p for p in scope.permissions if p in allowed)
        if perms:
            granted.append(Scope(scope.resource, perms))
    return tuple(dict.fromkeys(granted))


def allows(scopes: Iterable[Scope], need: Need) -> bool:
    """Whether ``scopes`` give ``need``'s permission on its resource type."""
    return any(s.covers(need.resource) and need.permission in s.permissions for s in scopes)


def need(resource: str, permission: str) -> Need:
    """A route's need, checked when the route is declared (a typo fails at import)."""
    if resource not in RESOURCE_TYPES or len(permission) != 1 \
            or permission not in PERMISSIONS:
        raise ValueError(f"bad scope need {resource}.{permission}")
    return Need(resource, permission)


def _in_order_subset(perms: str) -> bool:
    position = -1
    for letter in perms:
        index = PERMISSIONS.find(letter)
        if index <= position:
            return False
        position = index
    return bool(perms)
