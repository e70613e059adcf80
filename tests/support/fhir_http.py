"""Reading the FHIR API's answers in tests: a 200 in FHIR JSON, and the resource an
operation returns in its Parameters."""
from __future__ import annotations

from typing import Any

FHIR_JSON = "application/fhir+json"


def ok(response: Any) -> dict[str, Any]:
    """The body of a 200 answer in FHIR JSON (the status and media type are asserted)."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    return response.get_json()


def returned(response: Any, *, alone: bool = False) -> dict[str, Any]:
    """The resource in an operation's Parameters 'return' (SDC style); with ``alone``,
    'return' must be the only parameter."""
    parameters = ok(response)
    assert parameters["resourceType"] == "Parameters"
    if alone:
        assert [p["name"] for p in parameters["parameter"]] == ["return"]
    return next(p["resource"] for p in parameters["parameter"] if p["name"] == "return")
