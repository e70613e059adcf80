"""The CapabilityStatement: exactly what this server implements, nothing more."""
from __future__ import annotations

from typing import Any

from .fhir_models import FHIR_VERSION

EXTRACT = "http://hl7.org/fhir/uv/sdc/OperationDefinition/QuestionnaireResponse-extract"


def build(*, version: str, base_url: str, date: str) -> dict[str, Any]:
    """A CapabilityStatement for the API at ``base_url``."""
    def definition(resource_type: str) -> dict[str, Any]:
        return {"type": resource_type,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": [{"name": "url", "type": "uri"},
                                {"name": "version", "type": "token"}]}

    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "Posterior thigh exam plugin team",
        "kind": "instance",
        "software": {"name": "Posterior thigh exam plugin", "version": version},
        "implementation": {"description": "Posterior thigh exam FHIR API", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "resource": [
                definition("Questionnaire"),
                definition("CodeSystem"),
                {"type": "QuestionnaireResponse",
                 "operation": [{"name": "extract", "definition": EXTRACT}]},
            ],
        }],
    }
