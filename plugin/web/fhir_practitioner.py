"""``GET /fhir/Practitioner/{id}``: the clinician a signed record names.

A signed record names its signer as ``Practitioner/<user id>`` (the response's
``author``, the Provenance agent and ``Provenance.signature.who``); this route resolves
that reference, and names the EHR's own Practitioner (``fhirUser``) of a user who
signed in by EHR launch as an identifier, linking the two. Only users who may sign (the
clinician role, or an admin who also holds it) are Practitioners; any other id, an
assistant's or an admin's, is not found. Not patient data, so not audited; like every
API read it needs a signed-in user (the one guard in ``auth``).
"""
from __future__ import annotations

from flask import Blueprint, Response

from ..adapters import identities, users
from ..core import practitioner
from ..errors import NotFoundError
from .auth import requires_scope
from .errors import fhir_response
from .fhir_rest import store

bp = Blueprint("practitioners", __name__)


@bp.get("/Practitioner/<id_>")
@requires_scope("Practitioner", "r")
def read_practitioner(id_: str) -> Response:
    """The Practitioner of a user who can sign, with the organisation's identifier and
    the EHR Practitioner(s) the user signed in as by launch."""
    user = users.get(store(), id_)
    if user is None or "clinician" not in user.roles:
        raise NotFoundError(f"Practitioner/{id_} is not known to this server.")
    identifier = (f"{user.identifier_system}|{user.identifier_value}"
                  if user.identifier_system and user.identifier_value else None)
    return fhir_response(practitioner.build(user.id, user.display_name, identifier,
                                            identities.ehr_practitioners(store(), user.id)))
