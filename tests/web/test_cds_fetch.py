"""Data the CDS client did not prefetch is fetched from its fhirServer (CDS Hooks 2.0).

The EHR's FHIR server is a real HTTP server on 127.0.0.1 in a thread: it answers
``Patient/<id>`` and the exam Observation search with what an EHR holds after delivery
(the product's own extraction of golden cases), and records every request's path and
headers. The cards must be the same as when the client prefetched everything.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from plugin.web import cds_fetch
from tests.support import cds, loopback
from tests.support.cds import LUMBAR_MRI, MRI_ORDER, PATIENT_VIEW
from tests.support.jwt_keys import ISSUER, CdsClient

TOKEN = "secret-access-token-7f3a"
SEARCH = "/fhir/Observation?patient={id}&category=exam,survey&_sort=-date&_count=200"


class FhirServer(loopback.Threaded):
    """A FHIR server on loopback. ``patients`` and ``observations`` (searchset Bundles)
    are keyed by patient id; ``status``, when set, answers every request with it;
    ``seen`` holds (path with query, headers) of every request."""

    def __init__(self) -> None:
        self.patients: dict[str, dict[str, Any]] = {}
        self.observations: dict[str, dict[str, Any]] = {}
        self.status: int | None = None
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(loopback.Quiet):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                with owner.lock:
                    owner.seen.append((self.path, dict(self.headers.items())))
                status, body = owner.answer(self.path)
                loopback.send(self, status, json.dumps(body).encode(), "application/fhir+json")

        super().__init__(Handler)

    def answer(self, path: str) -> tuple[int, Any]:
        missing = {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "not-found"}]}
        if self.status is not None:
            return self.status, missing
        parts = urlsplit(path)
        if parts.path.startswith("/fhir/Patient/"):
            found = self.patients.get(parts.path.removeprefix("/fhir/Patient/"))
            return (200, found) if found else (404, missing)
        if parts.path == "/fhir/Observation":
            patient = parse_qs(parts.query).get("patient", [""])[0]
            return 200, self.observations.get(patient, {
                "resourceType": "Bundle", "type": "searchset", "total": 0})
        return 404, missing

    @property
    def base(self) -> str:
        return f"{super().base}/fhir"

    @property
    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.seen]


@pytest.fixture(scope="module")
def fhir() -> Iterator[FhirServer]:
    server = FhirServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _fresh(fhir: FhirServer) -> None:
    with fhir.lock:
        fhir.seen.clear()
    fhir.status = None


@pytest.fixture(scope="module")
def ehr() -> CdsClient:
    return CdsClient()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, ehr: CdsClient,  # type: ignore[no-untyped-def]
        fhir: FhirServer):
    with cds.app_with(tmp_path_factory.mktemp("fetch"), {
            "CDS_HOOKS_FETCH_TIMEOUT_SECONDS": 2,
            "CDS_HOOKS_CLIENTS": {ISSUER: {"jwks": ehr.jwks(),
                                           "fhir_servers": [fhir.base]}}}) as made:
        yield made


def _auth(server: str, token: str = TOKEN) -> dict[str, Any]:
    return {"fhirServer": server, "fhirAuthorization": {
        "access_token": token, "token_type": "Bearer", "expires_in": 300,
        "scope": "patient/Patient.read patient/Observation.read", "subject": "cds-service"}}


def _holding(fhir: FhirServer, kb: Any, name: str, **kw: Any) -> dict[str, Any]:
    """The case's patient and Observations on the FHIR server; returns the prefetch."""
    data = cds.case(name)
    pid = data["patient"]["id"]
    prefetch = {"patient": data["patient"], "observations": cds.observations(kb, data, **kw)}
    fhir.patients[pid] = prefetch["patient"]
    fhir.observations[pid] = prefetch["observations"]
    return prefetch


def _comparable(value: Any) -> Any:
    """Cards without what differs on every call (uuids, the time of the answer)."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in ("uuid", "authoredOn")}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _cards(response) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_data(as_text=True)
    return _comparable(response.get_json()["cards"])


def _failed(response, words: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 412, response.get_data(as_text=True)
    code, text = cds.refusal(response)
    assert code == "incomplete" and words in text, text


@pytest.mark.parametrize("name", ["cauda-equina-red-flags",
                                  "triathlete-proximal-hamstring-tendinopathy"])
def test_patient_view_fetches_what_was_not_prefetched_and_gives_the_same_cards(
        client, ehr, kb, fhir, name: str) -> None:
    prefetch = _holding(fhir, kb, name)
    pid = prefetch["patient"]["id"]
    expected = _cards(cds.post(client, ehr, PATIENT_VIEW,
                               cds.body("patient-view", pid, prefetch=prefetch)))
    assert fhir.paths == [] and len(expected) >= 2
    fetched = cds.post(client, ehr, PATIENT_VIEW,
                       {**cds.body("patient-view", pid, prefetch=None), **_auth(fhir.base)})
    assert _cards(fetched) == expected
    assert fhir.paths == [f"/fhir/Patient/{pid}", SEARCH.format(id=pid)]
    for _, headers in fhir.seen:
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["Accept"] == "application/fhir+json"


def test_only_the_keys_not_sent_are_fetched(client, ehr, kb, fhir) -> None:
    prefetch = _holding(fhir, kb, "cauda-equina-red-flags")
    pid = prefetch["patient"]["id"]
    expected = _cards(cds.post(client, ehr, PATIENT_VIEW,
                               cds.body("patient-view", pid, prefetch=prefetch)))
    partial = cds.body("patient-view", pid, prefetch={"patient": prefetch["patient"]})
    assert _cards(cds.post(client, ehr, PATIENT_VIEW, {**partial, **_auth(fhir.base)})) == expected
    assert fhir.paths == [SEARCH.format(id=pid)]


def test_the_order_hooks_fetch_for_a_lumbar_mri_order(client, ehr, kb, fhir) -> None:
    prefetch = _holding(fhir, kb, "disc-radiculopathy-2-weeks-severe", effective=cds.today())
    pid = prefetch["patient"]["id"]
    body = cds.body("order-sign", pid, prefetch=None, draftOrders=cds.orders(LUMBAR_MRI))
    (card,) = _cards(cds.post(client, ehr, MRI_ORDER, {**body, **_auth(fhir.base)}))
    assert card["indicator"] == "warning" and card["overrideReasons"]
    assert len(fhir.paths) == 2


def test_the_order_hooks_need_no_data_for_other_orders(client, ehr, fhir) -> None:
    physio = {"system": "http://snomed.info/sct", "code": "308447003"}
    body = cds.body("order-sign", prefetch=None, draftOrders=cds.orders(physio))
    assert _cards(cds.post(client, ehr, MRI_ORDER, body)) == []  # no fhirServer: not needed
    assert _cards(cds.post(client, ehr, MRI_ORDER, {**body, **_auth(fhir.base)})) == []
    assert fhir.paths == []


def test_null_prefetch_means_found_nothing_and_is_not_fetched(client, ehr, kb, fhir) -> None:
    pid = _holding(fhir, kb, "cauda-equina-red-flags")["patient"]["id"]
    body = cds.body("patient-view", pid, prefetch={"patient": None, "observations": None})
    found = _cards(cds.post(client, ehr, PATIENT_VIEW, {**body, **_auth(fhir.base)}))
    assert len(found) == 1  # the launch card only
    assert fhir.paths == []


def test_without_fhir_authorization_it_is_412(client, ehr, fhir) -> None:
    _failed(cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view", prefetch=None)),
            "no fhirServer and fhirAuthorization")
    body = {**cds.body("patient-view", prefetch={"patient": None}), "fhirServer": fhir.base}
    _failed(cds.post(client, ehr, PATIENT_VIEW, body), "observations not sent")
    assert fhir.paths == []


def test_an_unreachable_fhir_server_is_412(make_app, ehr) -> None:
    down = FhirServer()
    down.close()  # nothing listens there any more
    app = make_app({"CDS_HOOKS_FETCH_TIMEOUT_SECONDS": 2,
                    "CDS_HOOKS_CLIENTS": {ISSUER: {"jwks": ehr.jwks(),
                                                   "fhir_servers": [down.base]}}})
    body = {**cds.body("patient-view", prefetch=None), **_auth(down.base)}
    _failed(cds.post(app.test_client(), ehr, PATIENT_VIEW, body), "cannot connect")


@pytest.mark.parametrize("status", [401, 403, 404, 500])
def test_a_fhir_server_error_is_412(client, ehr, fhir, status: int) -> None:
    fhir.status = status
    body = {**cds.body("patient-view", prefetch=None), **_auth(fhir.base)}
    _failed(cds.post(client, ehr, PATIENT_VIEW, body), f"HTTP {status}")
    assert len(fhir.paths) == 1  # the first failure ends it


def test_a_fetched_resource_of_the_wrong_kind_is_412(client, ehr, fhir) -> None:
    fhir.patients["p-1"] = {"resourceType": "Patient", "id": "someone-else"}
    body = {**cds.body("patient-view", prefetch={"observations": None}), **_auth(fhir.base)}
    _failed(cds.post(client, ehr, PATIENT_VIEW, body), "not what the template asks for")


def test_a_fhir_server_not_allowed_is_412_without_a_request(client, ehr, fhir) -> None:
    other = FhirServer()  # loopback too, but not in this client's fhir_servers
    try:
        body = {**cds.body("patient-view", prefetch=None), **_auth(other.base)}
        _failed(cds.post(client, ehr, PATIENT_VIEW, body), "fhirServer is neither")
        trick = {**cds.body("patient-view", prefetch=None),
                 **_auth(fhir.base.removesuffix("/fhir") + "/fhir-evil")}
        _failed(cds.post(client, ehr, PATIENT_VIEW, trick), "fhirServer is neither")
        assert other.paths == [] and fhir.paths == []
    finally:
        other.close()


def test_without_fhir_servers_configured_only_https_is_fetched_from(make_app, ehr,
                                                                     fhir) -> None:
    app = make_app({"CDS_HOOKS_CLIENTS": {ISSUER: {"jwks": ehr.jwks()}}})
    body = {**cds.body("patient-view", prefetch=None), **_auth(fhir.base)}
    _failed(cds.post(app.test_client(), ehr, PATIENT_VIEW, body), "only from https")
    assert fhir.paths == []


def test_neither_the_token_nor_the_data_is_logged(client, ehr, kb, fhir, caplog) -> None:
    prefetch = _holding(fhir, kb, "cauda-equina-red-flags")
    pid = prefetch["patient"]["id"]
    # INFO and up, everywhere (urllib3 logs each request line at DEBUG, as any HTTP
    # client library does; a deployment does not run it at DEBUG)
    with caplog.at_level(logging.INFO):
        _cards(cds.post(client, ehr, PATIENT_VIEW,
                        {**cds.body("patient-view", pid, prefetch=None), **_auth(fhir.base)}))
        fhir.status = 500
        cds.post(client, ehr, PATIENT_VIEW,
                 {**cds.body("patient-view", pid, prefetch=None), **_auth(fhir.base)})
    assert "fetched 2 prefetch item(s)" in caplog.text
    assert "failed: HTTP 500" in caplog.text
    assert TOKEN not in caplog.text and pid not in caplog.text
    assert prefetch["patient"]["name"][0]["family"] not in caplog.text


def test_a_bad_fhir_servers_entry_stops_start_up(make_app, ehr) -> None:
    with pytest.raises(ValueError, match="fhir_servers"):
        make_app({"CDS_HOOKS_CLIENTS": {ISSUER: {"jwks": ehr.jwks(),
                                                 "fhir_servers": "http://127.0.0.1"}}})


# --- the pieces ----------------------------------------------------------------------

def test_templates_are_filled_url_encoded() -> None:
    assert cds_fetch.fill("Patient/{{context.patientId}}", {"patientId": "a/b c&d"}) \
        == "Patient/a%2Fb%20c%26d"
    assert cds_fetch.fill("Observation?patient={{ context.patientId }}&x=1",
                          {"patientId": "p-1"}) == "Observation?patient=p-1&x=1"
    with pytest.raises(cds_fetch.FetchError, match="context.encounterId"):
        cds_fetch.fill("Encounter/{{context.encounterId}}", {"patientId": "p"})
    with pytest.raises(cds_fetch.FetchError, match="cannot fill"):
        cds_fetch.fill("Practitioner/{{userPractitionerId}}", {})


@pytest.mark.parametrize("server, allowed, ok", [
    ("https://ehr.example.org/fhir", None, True),
    ("http://ehr.example.org/fhir", None, False),
    ("http://127.0.0.1:8080/fhir", ("http://127.0.0.1:8080/fhir",), True),
    ("http://127.0.0.1:8080/fhir/", ("http://127.0.0.1:8080/fhir",), True),
    ("http://127.0.0.1:8080/fhir/r4", ("http://127.0.0.1:8080/fhir",), True),
    ("http://127.0.0.1:8080/fhirx", ("http://127.0.0.1:8080/fhir",), False),
    ("https://ehr.example.org.evil.com/fhir", ("https://ehr.example.org",), False),
    ("https://ehr.example.org/fhir", ("http://127.0.0.1:8080/fhir",), False),
])
def test_which_fhir_servers_are_allowed(server: str, allowed: Any, ok: bool) -> None:
    assert cds_fetch.server_allowed(server, allowed) is ok
