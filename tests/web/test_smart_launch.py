"""SMART App Launch against the test EHR (tests/support/ehr.py): an authorization server
and a FHIR server, each its own process, speaking real HTTP, real JWTs and real PKCE.

The browser's hops are made by hand: the app's redirects are followed with Flask's
client (the app) and with ``requests`` (the EHR's authorize endpoint), so each step's
URL can be checked. The end-to-end run in Chromium is tests/browser/launch.spec.mjs.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.parse

import pytest
import requests
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import select

from plugin.adapters import launches, smart, store as store_mod
from plugin.adapters.tables import launches as launches_table
from tests.support.ehr import running_ehr
from tests.support.signin import signed_in

CLIENT_ID = "posterior-thigh-exam"
CALLBACK = "http://localhost/launch/callback"
PATIENT = {"resourceType": "Patient", "id": "p-1", "name": [{"family": "Ehrson",
                                                           "given": ["Eva"]}],
           "birthDate": "1980-02-29", "identifier": [{"system": "urn:mrn", "value": "E-1"}]}
ENCOUNTER = {"resourceType": "Encounter", "id": "e-1", "status": "in-progress",
             "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                       "code": "AMB"}, "subject": {"reference": "Patient/p-1"}}


@pytest.fixture(scope="module")
def ehr(tmp_path_factory):
    with running_ehr(tmp_path_factory.mktemp("ehr")) as running:
        yield running


@pytest.fixture()
def fresh_ehr(ehr):
    ehr.reset()
    ehr.register_client(CLIENT_ID, [CALLBACK])
    ehr.seed(PATIENT, ENCOUNTER)
    return ehr


@pytest.fixture()
def app(make_app, fresh_ehr):
    return make_app({"WTF_CSRF_ENABLED": False,
                     "SMART_CLIENTS": {fresh_ehr.fhir_base: {"client_id": CLIENT_ID}}})


@pytest.fixture()
def client(app):
    return signed_in(app)


def _authorize(client, query: str):
    """GET /launch?…: the app's redirect to the EHR's authorize endpoint."""
    response = client.get(f"/launch?{query}")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def _approve(authorize_url: str) -> str:
    """The EHR's authorize endpoint, as the browser meets it: its redirect back."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def _callback(client, callback_url: str):
    parts = urllib.parse.urlsplit(callback_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == CALLBACK
    return client.get(f"{parts.path}?{parts.query}")


def _launch(client, ehr, *, patient="p-1", encounter="e-1"):
    launch = ehr.launch(patient, encounter)
    query = urllib.parse.urlencode({"iss": ehr.fhir_base, "launch": launch})
    return _callback(client, _approve(_authorize(client, query)))


def _exam_id(response) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"].split("/")[2]


def test_an_ehr_launch_asks_for_a_pkce_authorization_for_that_fhir_server(client, fresh_ehr):
    launch = fresh_ehr.launch("p-1", "e-1")
    url = _authorize(client, urllib.parse.urlencode({"iss": fresh_ehr.fhir_base,
                                                     "launch": launch}))
    assert url.startswith(f"{fresh_ehr.auth_base}/authorize?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == CALLBACK
    assert query["aud"] == fresh_ehr.fhir_base
    assert query["launch"] == launch
    assert query["code_challenge_method"] == "S256"
    assert len(base64.urlsafe_b64decode(query["code_challenge"] + "=")) == 32  # SHA-256
    assert len(query["state"]) >= 22  # >= 128 bits, url-safe
    assert {"launch", "openid", "fhirUser", "patient/Patient.r"} <= set(query["scope"].split())


def test_the_launched_exam_is_for_the_ehrs_patient_in_its_encounter_prefilled(app, client,
                                                                              fresh_ehr):
    exam_id = _exam_id(_launch(client, fresh_ehr))
    store = store_mod.from_app(app)
    exam = store.exam(exam_id)
    patient = store.patient(exam.patient_id)
    assert (patient.ehr_base, patient.ehr_id) == (fresh_ehr.fhir_base, "p-1")
    assert patient.resource["name"] == PATIENT["name"]
    assert exam.encounter == {"reference": "Encounter/e-1"}
    born = dt.date(1980, 2, 29)
    today = dt.date.today()
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    assert exam.answers == {"patient.age-years": age}
    assert exam.draft["encounter"] == {"reference": "Encounter/e-1"}
    issued = fresh_ehr.auth_state()["issued"]
    assert [(i["grant_type"], i["patient"], i["encounter"]) for i in issued] == \
        [("authorization_code", "p-1", "e-1")]
    page = client.get(f"/exams/{exam_id}", follow_redirects=True).get_data(as_text=True)
    assert "Ehrson, Eva" in page


def test_launching_again_resumes_the_exam_and_keeps_one_patient(app, client, fresh_ehr):
    first = _exam_id(_launch(client, fresh_ehr))
    again = _exam_id(_launch(client, fresh_ehr))
    assert again == first
    other_encounter = _exam_id(_launch(client, fresh_ehr, encounter="e-2"))
    assert other_encounter != first
    store = store_mod.from_app(app)
    assert [p.ehr_id for p in store.patients()] == ["p-1"]


def test_tokens_stay_on_the_server_sealed(app, client, fresh_ehr):
    response = _launch(client, fresh_ehr)
    _exam_id(response)
    cookies = " ".join(c.value for c in client._cookies.values())
    with store_mod.from_app(app).engine.connect() as conn:
        row = conn.execute(select(launches_table)).one()
    assert row.stage == "active"
    assert row.oauth_state is None and row.code_verifier is None  # used up
    assert not row.access_token.startswith("eyJ")  # not the JWT itself
    token = launches.Sealer(app.secret_key).open(row.access_token)
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == CLIENT_ID and claims["patient"] == "p-1"
    assert token not in cookies
    session = json.dumps(_session(app, client))
    assert claims["jti"] not in session and "eyJ" not in session
    assert _session(app, client)["smart_launches"] == []  # the used launch is gone
    assert launches.Sealer("another key").open(row.access_token) is None


def _session(app, client):
    with client.session_transaction() as session:
        return dict(session)


def test_a_standalone_launch_lets_the_ehr_pick_the_patient(client, fresh_ehr):
    fresh_ehr.configure(standalone_patient="p-1")
    url = _authorize(client, urllib.parse.urlencode({"iss": fresh_ehr.fhir_base}))
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert "launch" not in query
    assert "launch/patient" in query["scope"].split()
    assert "launch" not in query["scope"].split()
    exam_id = _exam_id(_callback(client, _approve(url)))
    assert exam_id
    # with one EHR configured, /launch alone starts the standalone launch with it
    assert client.get("/launch").headers["Location"].startswith(fresh_ehr.auth_base)


def test_an_unknown_fhir_server_is_refused_without_contacting_it(client, fresh_ehr):
    response = client.get("/launch?" + urllib.parse.urlencode(
        {"iss": "http://127.0.0.1:9/fhir", "launch": "x"}))
    assert response.status_code == 400
    assert "not set up to launch" in response.get_data(as_text=True)
    assert fresh_ehr.auth_state()["authorize_requests"] == []


def test_a_callback_is_used_once_and_only_by_the_browser_that_started_it(app, client,
                                                                         fresh_ehr):
    launch = fresh_ehr.launch("p-1", "e-1")
    back = _approve(_authorize(client, urllib.parse.urlencode(
        {"iss": fresh_ehr.fhir_base, "launch": launch})))
    stranger = signed_in(app)
    refused = _callback(stranger, back)
    assert refused.status_code == 400
    assert "not started in this browser" in refused.get_data(as_text=True)
    _exam_id(_callback(client, back))
    replayed = _callback(client, back)
    assert replayed.status_code == 400
    forged = client.get("/launch/callback?code=x&state=forged")
    assert forged.status_code == 400
    assert len(fresh_ehr.auth_state()["issued"]) == 1


def test_the_ehr_refusing_is_said_in_words(client, fresh_ehr):
    fresh_ehr.configure(deny=True)
    response = _launch(client, fresh_ehr)
    assert response.status_code == 403
    assert "access was denied" in response.get_data(as_text=True)


@pytest.mark.parametrize("key", [
    RSAKey.generate_key(2048, parameters={"kid": "app-rsa"}, private=True),
    ECKey.generate_key("P-384", parameters={"kid": "app-ec"}, private=True)],
    ids=["RS384", "ES384"])
def test_a_confidential_client_signs_its_token_requests(make_app, fresh_ehr, key):
    fresh_ehr.register_client(CLIENT_ID, [CALLBACK],
                              jwks=KeySet([key]).as_dict(private=False))
    app = make_app({"WTF_CSRF_ENABLED": False, "SMART_CLIENTS": {fresh_ehr.fhir_base: {
        "client_id": CLIENT_ID, "jwk": key.as_dict(private=True)}}})
    _exam_id(_launch(signed_in(app), fresh_ehr))
    assert fresh_ehr.auth_state()["rejected"] == []


def test_an_expired_token_is_refreshed_and_works_at_the_ehr(app, client, fresh_ehr):
    fresh_ehr.configure(token_lifetime=1)  # expired at once (30 s margin)
    _exam_id(_launch(client, fresh_ehr))
    store = store_mod.from_app(app)
    with store.engine.connect() as conn:
        row = conn.execute(select(launches_table)).one()
    sealer = launches.Sealer(app.secret_key)
    config = smart.discover(fresh_ehr.fhir_base, timeout=5)
    client_ = smart.Client(CLIENT_ID, "")
    refreshed = launches.access_token(
        store, row.id, sealer, lambda rt: smart.refresh(config, client_, rt, timeout=5))
    assert fresh_ehr.auth_state()["refreshed"] == 1
    patient = smart.read(fresh_ehr.fhir_base, "Patient/p-1", refreshed, timeout=5)
    assert patient["id"] == "p-1"
    # the rotated refresh token was kept: a second refresh works too
    launches.access_token(store, row.id, sealer,
                          lambda rt: smart.refresh(config, client_, rt, timeout=5))
    assert fresh_ehr.auth_state()["refreshed"] == 2


class _Job:
    def __init__(self, exam_id: str) -> None:
        self.id, self.exam_id = "job-1", exam_id


class _Backend:
    """A stand-in for the backend-services provider: records that it was asked."""

    def __init__(self) -> None:
        self.calls, self.forgotten = 0, 0

    def __call__(self, job):
        self.calls += 1
        return "backend-token"

    def forget(self, job=None):
        self.forgotten += 1


def test_deliveries_carry_the_launch_token_and_fall_back_to_backend_services(app, client,
                                                                            fresh_ehr):
    exam_id = _exam_id(_launch(client, fresh_ehr))
    store = store_mod.from_app(app)
    sealer = launches.Sealer(app.secret_key)
    clients = app.config["SMART_CLIENTS"]
    backend = _Backend()
    tokens = launches.LaunchTokens(store, sealer, clients, fresh_ehr.fhir_base, timeout=5,
                                   fallback=backend)
    job = _Job(exam_id)
    user_token = tokens(job)
    assert user_token != "backend-token" and backend.calls == 0
    assert smart.read(fresh_ehr.fhir_base, "Patient/p-1", user_token, timeout=5)["id"] == "p-1"
    # the EHR refused it (401): the next delivery refreshes first
    tokens.forget(job)
    assert backend.forgotten == 0
    assert tokens(job) != user_token
    assert fresh_ehr.auth_state()["refreshed"] == 1
    # a delivery to another EHR never carries this EHR's token
    elsewhere = launches.LaunchTokens(store, sealer, clients, "https://other.example/fhir",
                                      timeout=5, fallback=backend)
    assert elsewhere(job) == "backend-token"
    # an exam typed on the tablet (no launch) goes with the backend token
    typed = store.add_patient({"resourceType": "Patient", "name": [{"family": "Typed"}]})
    exam = store.create_exam(typed.id, store.exam(exam_id).questionnaire, answers={}, draft={})
    assert tokens(_Job(exam.id)) == "backend-token"
    # the refresh refused (the user's EHR session ended): backend services again
    fresh_ehr.reset()
    fresh_ehr.register_client(CLIENT_ID, [CALLBACK])
    tokens.forget(job)
    assert tokens(job) == "backend-token"


def test_launches_that_never_completed_are_forgotten_after_a_day(app, client, fresh_ehr):
    query = urllib.parse.urlencode({"iss": fresh_ehr.fhir_base,
                                    "launch": fresh_ehr.launch("p-1")})
    _authorize(client, query)  # the user never came back
    store = store_mod.from_app(app)
    with store.engine.begin() as conn:
        conn.execute(launches_table.update().values(
            created=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)))
    _exam_id(_launch(client, fresh_ehr))
    with store.engine.connect() as conn:
        stages = conn.execute(select(launches_table.c.stage)).scalars().all()
    assert stages == ["active"]


@pytest.mark.parametrize("patient", ["../Observation/x", "p 1", "p?_format=xml"])
def test_a_patient_context_that_is_not_a_fhir_id_is_refused(client, fresh_ehr, patient):
    response = _launch(client, fresh_ehr, patient=patient)
    assert response.status_code == 502
    assert "not a FHIR id" in response.get_data(as_text=True)
    assert not [a for a in fresh_ehr.state()["auth"] if a["method"] == "GET"
                and "Patient" in a["path"]]  # nothing was read with it


def test_a_launch_audits_the_patient_brought_and_refreshed_and_the_exam_begun(app, client,
                                                                            fresh_ehr):
    from plugin.adapters import audit

    first = _exam_id(_launch(client, fresh_ehr))
    _launch(client, fresh_ehr)  # the same encounter: the exam resumes, the patient refreshes
    engine = store_mod.from_app(app).engine
    events = [json.loads(t) for t in audit.events_since(engine, None)
              if json.loads(t)["type"]["code"] == "rest"
              and json.loads(t)["subtype"][0]["code"] in ("create", "update")]
    [patient_id] = [p.id for p in store_mod.from_app(app).patients()]
    facts = [audit.facts(e) for e in events]
    # the launch signed in the EHR's practitioner (its id token's fhirUser): they act
    launched = "test-practitioner"
    assert [(f.action, f.resource, f.patient_id, f.agent) for f in facts] == [
        ("C", f"Patient/{patient_id}", patient_id, launched),
        ("C", f"QuestionnaireResponse/{first}", patient_id, launched),
        ("U", f"Patient/{patient_id}", patient_id, launched)]
