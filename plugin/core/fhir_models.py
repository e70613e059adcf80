"""The one import point for fhir.resources, and so the one place the FHIR release is chosen.

We speak R4 (4.0.1) on the wire and use the ``R4B`` models, which are wire-identical for
every resource this product emits (shared/fhir.md §1.2). Building every resource through
pydantic costs ~1 ms each, so the pipeline builds plain dicts and this module checks them
where a check is worth its cost: at start-up for definitions, and in the test suite.
"""
from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

#: What this product says in CapabilityStatement.fhirVersion and in its docs.
FHIR_VERSION = "4.0.1"


def validate(resource: dict[str, Any]) -> list[str]:
    """Return the structural problems fhir.resources finds in ``resource`` (empty: valid)."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return ["resourceType: missing or not a string"]
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return [f"resourceType: unknown resource type {resource_type!r}"]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
    return []
