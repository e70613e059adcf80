"""Reading the FHIR API's answers in tests: a 200 in FHIR JSON (conformant, when a
validator is given), a refusal's OperationOutcome, and the resource an operation returns
in its Parameters."""
from __future__ import annotations

from typing import Any

from tests.support.conformance import IndependentValidator, assert_conformant

FHIR_JSON = "application/fhir+json"
#: The FHIR API's base URL under Flask's test client.
BASE = "http://localhost/fhir"


def ok(response: Any) -> dict[str, Any]:
    """The body of a 200 answer in FHIR JSON (the status and media type are asserted)."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    return response.get_json()


def valid(response: Any, validator: IndependentValidator) -> dict[str, Any]:
    """The body of a 200 FHIR JSON answer, conformant (a Bundle's entries one by one as
    well)."""
    body = ok(response)
    assert_conformant(validator, body)
    for entry in body.get("entry", []) if body["resourceType"] == "Bundle" else []:
        assert_conformant(validator, entry["resource"])
    return body


def refused(response: Any, validator: IndependentValidator, status: int,
            text: str) -> dict[str, Any]:
    """The conformant OperationOutcome of an answer with ``status``, ``text`` in one of
    its issues' details."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert_conformant(validator, body)
    assert text in " | ".join(i["details"]["text"] for i in body["issue"])
    return body


def returned(response: Any, *, alone: bool = False) -> dict[str, Any]:
    """The resource in an operation's Parameters 'return' (SDC style); with ``alone``,
    'return' must be the only parameter."""
    parameters = ok(response)
    assert parameters["resourceType"] == "Parameters"
    if alone:
        assert [p["name"] for p in parameters["parameter"]] == ["return"]
    return next(p["resource"] for p in parameters["parameter"] if p["name"] == "return")
