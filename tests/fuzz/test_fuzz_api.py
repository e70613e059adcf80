"""Fuzzing the machine APIs: hostile copies of valid requests to every JSON endpoint of
the FHIR API and of CDS Hooks (issue 13).

For every case: no 5xx; under ``/fhir`` every refusal is an OperationOutcome (FHIR JSON,
each issue with its text); under ``/cds-services`` the CDS error JSON; and after the run
the valid request still gets its 200. Cases: ``tests/support/fuzz.py`` (``FUZZ``).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given

from plugin.core import responses
from plugin.record import pipeline
from tests.support import cds
from tests.support.cds import MRI_ORDER, PATIENT_VIEW
from tests.support.fuzz import FUZZ, encode, mutants
from tests.support.jwt_keys import CdsClient
from tests.support.signin import signed_in

#: A failing case may be large; hypothesis would warn (an error here) instead of showing it.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
CASE = cds.case("disc-radiculopathy-8-weeks-severe")
Q = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam"
NOW = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.timezone.utc)


def _completed_response(kb: Any) -> dict[str, Any]:
    exam = pipeline.exam_from_input(kb, CASE["answers"], patient=CASE["patient"], now=NOW)
    return responses.build(exam)


def _seeds(kb: Any) -> dict[str, tuple[str, Any]]:
    """A valid body for each JSON endpoint of the FHIR API, by name: (path, body)."""
    qr = _completed_response(kb)
    with_patient = {"resourceType": "Parameters", "parameter": [
        {"name": "questionnaire-response", "resource": qr},
        {"name": "patient", "resource": CASE["patient"]}]}
    populate = {"resourceType": "Parameters", "parameter": [
        {"name": "questionnaire", "valueCanonical": Q},
        {"name": "subject", "valueReference": {"reference": "Patient/p-1"}},
        {"name": "context", "part": [{"name": "name", "valueString": "patient"},
                                     {"name": "content", "resource": CASE["patient"]}]}]}
    return {
        "extract-parameters": ("/fhir/QuestionnaireResponse/$extract", with_patient),
        "extract-plain": ("/fhir/QuestionnaireResponse/$extract", CASE["answers"]),
        "extract-bare-response": ("/fhir/QuestionnaireResponse/$extract", qr),
        "assess": ("/fhir/QuestionnaireResponse/$assess", with_patient),
        "populate": ("/fhir/Questionnaire/$populate", populate),
        "populate-instance": ("/fhir/Questionnaire/posterior-thigh-exam/$populate", populate),
    }


@pytest.mark.parametrize("name", ["extract-parameters", "extract-plain",
                                  "extract-bare-response", "assess", "populate",
                                  "populate-instance"])
def test_fhir_operations_refuse_hostile_bodies_with_an_outcome(app, kb, name) -> None:
    path, seed = _seeds(kb)[name]
    client = signed_in(app)

    @FUZZ
    @given(body=mutants(seed))
    def case(body: Any) -> None:
        response = client.post(path, data=encode(body), content_type="application/fhir+json")
        assert response.status_code < 500, response.get_data(as_text=True)[:500]
        assert response.mimetype == "application/fhir+json"
        result = response.get_json()
        if response.status_code >= 400:
            assert result["resourceType"] == "OperationOutcome", result
            assert result["issue"] and all(i["details"]["text"] for i in result["issue"])
        else:
            assert result["resourceType"] == "Parameters", result

    case()
    valid = client.post(path, data=encode(seed), content_type="application/fhir+json")
    assert valid.status_code == 200, valid.get_data(as_text=True)[:500]


@pytest.mark.parametrize("query", [
    "/fhir/QuestionnaireResponse?patient=p-1&status=completed&_count=5",
    "/fhir/Observation?patient=p-1&code=http://loinc.org|1234-5",
    "/fhir/Questionnaire?url=" + Q,
])
def test_fhir_searches_refuse_hostile_parameters_with_an_outcome(app, query) -> None:
    from urllib.parse import parse_qsl, quote

    path, _, text = query.partition("?")
    seed = dict(parse_qsl(text))
    client = signed_in(app)

    @FUZZ
    @given(params=mutants(seed))
    def case(params: Any) -> None:
        pairs = params.items() if isinstance(params, dict) else [("x", params)]
        target = path + "?" + "&".join(
            f"{quote(str(k).encode('utf-8', 'surrogatepass'))}="
            f"{quote(str(v).encode('utf-8', 'surrogatepass'))}" for k, v in pairs)
        response = client.get(target[:3000])
        assert response.status_code < 500, response.get_data(as_text=True)[:500]
        if response.status_code >= 400:
            assert response.get_json()["resourceType"] == "OperationOutcome"

    case()
    assert client.get(query).status_code == 200


# --- CDS Hooks ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ehr() -> CdsClient:
    return CdsClient()


@pytest.fixture(scope="module")
def cds_app(tmp_path_factory, ehr):
    with cds.app_with(tmp_path_factory.mktemp("fuzz-cds"), cds.settings(ehr)) as made:
        yield made


def _cds_seeds(kb: Any) -> dict[str, tuple[str, Any]]:
    prefetch = {"patient": CASE["patient"], "observations": cds.observations(kb, CASE)}
    view = cds.body("patient-view", CASE["patient"]["id"], prefetch=prefetch)
    order = cds.body("order-select", CASE["patient"]["id"], prefetch=prefetch,
                     draftOrders=cds.orders(cds.LUMBAR_MRI), selections=["ServiceRequest/sr-0"])
    feedback = {"feedback": [{"card": "c-1", "outcome": "overridden",
                              "outcomeTimestamp": "2026-11-21T10:00:00Z"}]}
    return {"patient-view": (PATIENT_VIEW, view), "order-select": (MRI_ORDER, order),
            "feedback": (PATIENT_VIEW + "/feedback", feedback)}


@pytest.mark.parametrize("name", ["patient-view", "order-select", "feedback"])
def test_cds_services_refuse_hostile_bodies_with_their_error_json(cds_app, ehr, kb,
                                                                   name) -> None:
    url, seed = _cds_seeds(kb)[name]
    client = cds_app.test_client()
    path = url.removeprefix("http://localhost")

    def post(body: bytes):  # type: ignore[no-untyped-def]
        return client.post(path, data=body, content_type="application/json",
                           headers={"Authorization": f"Bearer {ehr.sign(url)}"})

    @FUZZ
    @given(body=mutants(seed))
    def case(body: Any) -> None:
        response = post(encode(body))
        assert response.status_code in (200, 400, 412), response.get_data(as_text=True)[:500]
        assert response.mimetype == "application/json"
        result = response.get_json()
        assert ("cards" in result or result == {}) if response.status_code == 200 \
            else cds.refusal(response)[1], result

    case()
    assert post(encode(seed)).status_code == 200
