"""The signed-in user as an R4 Practitioner: who a signed record names as its author.

A record names its clinician by reference (``QuestionnaireResponse.author``,
``Provenance.agent.who``, ``Signature.who``), never by a typed name, so every user who
can sign has a Practitioner, served at ``GET /fhir/Practitioner/{id}``. Its identifier
is the one the organisation gave the user (``system|value``: a licence or staff number),
so an EHR can match it to its own Practitioner; a user who signed in by EHR launch also
carries that EHR's Practitioner (their ``fhirUser``) as an identifier, system = the
EHR's FHIR base + ``/Practitioner``, value = its id. Why: a signature names
``Practitioner/<our user id>``; this is what ties it to the person the EHR knows.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import InputError


def build(user_id: str, display: str, identifier: str | None = None,
          ehr_practitioners: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """An R4 Practitioner for the user ``user_id`` named ``display``; ``identifier`` as
    ``system|value`` (an InputError names a malformed one); ``ehr_practitioners``:
    ``(EHR FHIR base, Practitioner id)`` the user is at the EHRs they launched from."""
    if not display.strip():
        raise InputError("A Practitioner needs a name.", expression="name")
    resource: dict[str, Any] = {"resourceType": "Practitioner", "id": user_id,
                                "active": True, "name": [{"text": display.strip()}]}
    if identifier:
        system, value = split_identifier(identifier)
        resource["identifier"] = [{"system": system, "value": value}]
    for base, practitioner_id in ehr_practitioners:
        resource.setdefault("identifier", []).append(
            {"system": f"{base.rstrip('/')}/Practitioner", "value": practitioner_id})
    return resource


def reference(user_id: str, display: str) -> dict[str, str]:
    """The Reference a record uses for the user."""
    return {"reference": f"Practitioner/{user_id}", "display": display}


def split_identifier(identifier: str) -> tuple[str, str]:
    """(system, value) of ``system|value``; both are required and the system is a URI."""
    system, bar, value = identifier.partition("|")
    system, value = system.strip(), value.strip()
    if not bar or not system or not value or ":" not in system or any(c.isspace() for c in system):
        raise InputError(f"{identifier!r} is not an identifier SYSTEM|VALUE (the system a "
                         "URI, e.g. http://hl7.org/fhir/sid/us-npi|1234567893).",
                         expression="identifier")
    return system, value
