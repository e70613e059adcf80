"""The read side of the audit trail: every GET that serves patient data, on the tablet
pages and on the FHIR API, leaves exactly one AuditEvent (one per patient found for a
search, BALP PatientQuery) naming the signed-in user, their network address, the patient
and the resource, written before the data is served; when it cannot be written the
request answers 503 and serves none of it."""
from __future__ import annotations

import base64
import json
import re

import pytest
from sqlalchemy import text

from plugin.adapters import audit, store as store_mod
from plugin.core import audit_events as ae
from tests.support.conformance import assert_conformant
from tests.support import rendering
from tests.support.signin import PASSWORD, signed_in

QR = "QuestionnaireResponse"
READS = {"read", "vread", "history-instance", "search-type"}


@pytest.fixture()
def app(make_app):
    return make_app({"WTF_CSRF_ENABLED": False})


@pytest.fixture()
def client(app):
    return signed_in(app)


def _patient(client, family: str) -> str:
    response = client.post("/patients", data={"family": family, "given": "Ana",
                                              "birth_date": "1986-03-14",
                                              "identifier": f"MRN-{family}"})
    assert response.status_code == 303
    return response.headers["Location"].rsplit("/", 1)[-1]


def _exam(client, patient_id: str, *, sign: bool) -> str:
    started = client.post(f"/patients/{patient_id}/exams")
    exam_id = started.headers["Location"].split("/")[2]
    page = client.get(started.headers["Location"]).get_data(as_text=True)
    version = int(re.search(r'"version": (\d+)', page).group(1))
    saved = client.put(f"/exams/{exam_id}/draft", headers={"If-Match": f'"{version}"'},
                       json={"section": "slr", "answers": {
                           "slr.left.onset-angle": 40,
                           "slr.left.response": "leg-pain-below-knee"}})
    if sign:
        signed = client.post(f"/exams/{exam_id}/sign", data={
            "version": saved.get_json()["version"], "password": PASSWORD})
        assert signed.status_code == 303
    return exam_id


def _reads(app) -> list[dict]:
    """The read AuditEvents so far, oldest first (write events are the use cases')."""
    events = [json.loads(t) for t in
              audit.events_since(store_mod.from_app(app).engine, None)]
    return [e for e in events if e["type"]["code"] == "rest"
            and e["subtype"][0]["code"] in READS]


def _new_reads(app, client, url: str, status: int = 200, **post) -> list[dict]:
    before = {e["id"] for e in _reads(app)}
    response = client.post(url, **post) if post else client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    return [e for e in _reads(app) if e["id"] not in before]


def _user(event) -> dict:
    (user,) = [a for a in event["agent"]
               if a["who"].get("identifier", {}).get("system") == ae.USER_SYSTEM]
    return user


def _entity(event, role: str) -> list[dict]:
    return [e for e in event.get("entity", []) if e.get("role", {}).get("code") == role]


@pytest.fixture()
def record(app, client):
    """A patient with a signed exam and a draft exam, and the signed exam's Observation."""
    patient_id = _patient(client, "Silva")
    signed = _exam(client, patient_id, sign=True)
    draft = _exam(client, patient_id, sign=False)
    rendering.render_pending(app)
    observations = client.get(f"/fhir/Observation?patient={patient_id}").get_json()
    observation = observations["entry"][0]["resource"]["id"]
    return {"patient": patient_id, "signed": signed, "draft": draft,
            "observation": observation}


READ_VIEWS = [  # (url, interaction, resource), with {patient}, {signed}, {draft}, {observation}
    ("/patients/{patient}", "read", "Patient/{patient}"),
    ("/exams/{draft}/pages/slr", "read", f"{QR}/{{draft}}"),
    ("/exams/{draft}/review", "read", f"{QR}/{{draft}}"),
    ("/exams/{signed}/record", "read", f"{QR}/{{signed}}"),
    ("/exams/{signed}/revisions/1", "vread", f"{QR}/{{signed}}/_history/1"),
    ("/exams/{signed}/summary.pdf", "read", f"{QR}/{{signed}}"),
    ("/exams/{signed}/handout.pdf", "read", f"{QR}/{{signed}}"),
    ("/exams/{draft}/handout.pdf?large=1", "read", f"{QR}/{{draft}}"),
    ("/fhir/Patient/{patient}", "read", "Patient/{patient}"),
    (f"/fhir/{QR}/{{signed}}", "read", f"{QR}/{{signed}}"),
    (f"/fhir/{QR}/{{signed}}/_history/1", "vread", f"{QR}/{{signed}}/_history/1"),
    (f"/fhir/{QR}/{{draft}}/_history", "history-instance", f"{QR}/{{draft}}/_history"),
    ("/fhir/Observation/{observation}", "read", "Observation/{observation}"),
]


def test_every_read_of_patient_data_leaves_one_audit_event(app, client, record,
                                                           validator) -> None:
    for url, interaction, resource in READ_VIEWS:
        events = _new_reads(app, client, url.format(**record))
        assert len(events) == 1, (url, events)
        (event,) = events
        assert event["subtype"][0]["code"] == interaction, url
        assert event["action"] == "R" and event["outcome"] == "0"
        user = _user(event)
        assert user["who"]["identifier"]["value"] == "test-clinician"
        assert user["who"]["display"] == "Dr Ann Lee" and user["requestor"] is True
        assert user["network"]["address"] == "127.0.0.1"
        (patient,) = _entity(event, "1")
        assert patient["what"] == {"reference": f"Patient/{record['patient']}"}, url
        (data,) = _entity(event, "4")
        assert data["what"] == {"reference": resource.format(**record)}, url
        assert_conformant(validator, event)


def test_a_redirect_serves_nothing_and_is_not_audited(app, client, record) -> None:
    # a signed exam's pages and review redirect to the record: only the record's read counts
    assert _new_reads(app, client, f"/exams/{record['signed']}/review", 302) == []
    assert _new_reads(app, client, f"/exams/{record['signed']}", 302) == []


def test_searches_leave_one_event_per_patient_found(app, client, record, validator) -> None:
    other = _patient(client, "Okafor")
    listed = _new_reads(app, client, "/patients")
    assert sorted(_entity(e, "1")[0]["what"]["reference"] for e in listed) == sorted(
        [f"Patient/{record['patient']}", f"Patient/{other}"])
    for event in listed:
        assert event["subtype"][0]["code"] == "search-type" and event["action"] == "E"
        assert _user(event)["who"]["identifier"]["value"] == "test-clinician"
        assert _user(event)["network"]["address"] == "127.0.0.1"
        (query,) = _entity(event, "24")
        assert query["description"] == "search of Patient"
    searched = _new_reads(app, client, "/patients?q=Okafor")
    assert [_entity(e, "1")[0]["what"]["reference"] for e in searched] == [f"Patient/{other}"]
    (query,) = _entity(searched[0], "24")
    assert base64.b64decode(query["query"]) == b"q=Okafor"
    assert_conformant(validator, searched[0])

    for url, searched_type in ((f"/fhir/{QR}?patient={record['patient']}", QR),
                               (f"/fhir/Observation?patient={record['patient']}",
                                "Observation")):
        (event,) = _new_reads(app, client, url)
        assert _entity(event, "1")[0]["what"] == {"reference": f"Patient/{record['patient']}"}
        assert _entity(event, "24")[0]["description"] == f"search of {searched_type}"
        assert _user(event)["who"]["identifier"]["value"] == "test-clinician"
        assert_conformant(validator, event)

    # a search that found nobody's data: one Query event, naming no patient
    (nobody,) = _new_reads(app, client, "/patients?q=Nobody")
    assert _entity(nobody, "1") == [] and len(_entity(nobody, "24")) == 1


def test_a_version_a_known_exam_lacks_is_audited_as_a_refused_read(app, client, record,
                                                                   validator) -> None:
    signed, patient = record["signed"], f"Patient/{record['patient']}"
    for url, resource in ((f"/exams/{signed}/revisions/7", f"{QR}/{signed}/_history/7"),
                          (f"/fhir/{QR}/{signed}/_history/7", f"{QR}/{signed}/_history/7"),
                          (f"/fhir/Observation/{signed}-0000000000000000",
                           f"Observation/{signed}-0000000000000000")):
        (event,) = _new_reads(app, client, url, 404)
        assert event["outcome"] == ae.MINOR_FAILURE and "no" in event["outcomeDesc"].lower()
        assert _entity(event, "1")[0]["what"] == {"reference": patient}, url
        assert _entity(event, "4")[0]["what"] == {"reference": resource}, url
        assert _user(event)["who"]["identifier"]["value"] == "test-clinician"
        (answered,) = [e for e in event["entity"] if "detail" in e]
        sent = json.loads(base64.b64decode(answered["detail"][0]["valueBase64Binary"]))
        assert sent["resourceType"] == "OperationOutcome"
        assert_conformant(validator, event)
    # an id that names no exam names no patient: nothing to attribute, no event
    assert _new_reads(app, client, "/exams/0b7c1c62-6a3a-4b5e-9d55-7c4f0f7a1d11/record",
                      404) == []
    assert _new_reads(app, client, "/fhir/Patient/0b7c1c62-6a3a-4b5e-9d55-7c4f0f7a1d11",
                      404) == []


def test_populate_from_a_stored_patient_is_audited_as_its_read(app, client, record) -> None:
    url = "/fhir/Questionnaire/posterior-thigh-exam/$populate"
    stored = {"resourceType": "Parameters", "parameter": [
        {"name": "subject", "valueReference": {"reference": f"Patient/{record['patient']}"}}]}
    (event,) = _new_reads(app, client, url, json=stored)
    assert event["subtype"][0]["code"] == "read"
    assert _entity(event, "1")[0]["what"] == {"reference": f"Patient/{record['patient']}"}
    assert _user(event)["who"]["identifier"]["value"] == "test-clinician"
    # a patient the caller sends in full: nothing stored here is read
    given = {"resourceType": "Parameters", "parameter": [
        {"name": "subject", "valueReference": {"reference": "Patient/ehr-1"}},
        {"name": "context", "part": [
            {"name": "name", "valueString": "patient"},
            {"name": "content", "resource": {"resourceType": "Patient", "id": "ehr-1",
                                             "birthDate": "1986-03-14"}}]}]}
    assert _new_reads(app, client, url, json=given) == []


def _break_the_audit_table(app) -> None:
    """Every audit write now fails (as on a full disk), while the data stays readable."""
    with store_mod.from_app(app).engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER test_audit_write_fails BEFORE INSERT ON "
                          "audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END"))


def test_a_read_whose_audit_cannot_be_written_serves_no_patient_data(app, client,
                                                                     record) -> None:
    _break_the_audit_table(app)
    for url, _, _ in READ_VIEWS + [("/patients", None, None),
                                   ("/patients?q=Silva", None, None),
                                   (f"/fhir/{QR}?patient={{patient}}", None, None),
                                   ("/fhir/Observation?patient={patient}", None, None)]:
        response = client.get(url.format(**record))
        assert response.status_code == 503, url
        body = response.get_data()
        assert b"Silva" not in body and b"MRN-" not in body and b"%PDF" not in body, url
        assert record["patient"].encode() not in body, url
        if url.startswith("/fhir"):
            issue = response.get_json()["issue"][0]
            assert issue["code"] == "transient", url


def test_a_page_shown_again_after_a_refused_action_is_audited_as_read(app, client,
                                                                     record) -> None:
    draft = record["draft"]
    page = client.get(f"/exams/{draft}/pages/slr").get_data(as_text=True)
    version = int(re.search(r'"version": (\d+)', page).group(1))
    (event,) = _new_reads(app, client, f"/exams/{draft}/sign", 422,
                          data={"version": version, "password": "not my password at all"})
    assert _entity(event, "4")[0]["what"] == {"reference": f"{QR}/{draft}"}
    assert _entity(event, "1")[0]["what"] == {"reference": f"Patient/{record['patient']}"}
    shown = _new_reads(app, client, "/patients", 422, data={"family": ""})
    assert f"Patient/{record['patient']}" in [_entity(e, "1")[0]["what"]["reference"]
                                              for e in shown]


def test_the_client_agent_says_whether_the_api_or_the_tablet_read(app, client,
                                                                   record) -> None:
    def client_agent(event):
        (agent,) = [a for a in event["agent"] if a["type"]["coding"][0]["code"] == "110152"]
        return agent["who"]["display"]

    (page,) = _new_reads(app, client, f"/patients/{record['patient']}")
    (api,) = _new_reads(app, client, f"/fhir/Patient/{record['patient']}")
    assert (client_agent(page), client_agent(api)) == ("web browser", "FHIR API client")
