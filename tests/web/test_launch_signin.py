"""Sign-in by EHR launch: the EHR's id token (verified: signature, iss, aud, exp, nonce)
signs the launching practitioner in, and their signature, after logging in again at the
EHR, names the EHR's own Practitioner in the copy the EHR receives. Against the test
EHR (tests/support/ehr.py), each hop by hand as in test_smart_launch.
"""
from __future__ import annotations

import re
import time
import urllib.parse

import pytest
import requests

from plugin.adapters import identities, store as store_mod, users
from plugin.web.auth import SESSION_KEY
from tests.support.conformance import assert_conformant
from tests.support.ehr import running_ehr
from tests.support.signin import signed_in
from tests.support.step_up import continue_url

CLIENT_ID = "posterior-thigh-exam"
CALLBACK = "http://localhost/launch/callback"
SSO_CALLBACK = "http://localhost/sso/callback"
PATIENT = {"resourceType": "Patient", "id": "p-1", "name": [{"family": "Ehrson",
                                                           "given": ["Eva"]}],
           "birthDate": "1980-02-29"}
PRACTITIONER = {"resourceType": "Practitioner", "id": "dr-lee",
                "name": [{"family": "Lee", "given": ["Ann"], "prefix": ["Dr"]}]}


@pytest.fixture(scope="module")
def ehr(tmp_path_factory):
    with running_ehr(tmp_path_factory.mktemp("ehr")) as running:
        yield running


@pytest.fixture()
def fresh_ehr(ehr):
    ehr.reset()
    ehr.register_client(CLIENT_ID, [CALLBACK, SSO_CALLBACK])
    ehr.seed(PATIENT, PRACTITIONER)
    ehr.configure(fhir_user="Practitioner/dr-lee", user_claims={"name": "Dr Ann Lee"},
                  signed_in_at=int(time.time()) - 1800)
    return ehr


def _app(make_app, ehr, **settings):
    return make_app({"WTF_CSRF_ENABLED": False, "EHR_FHIR_BASE_URL": ehr.fhir_base,
                     "SMART_CLIENTS": {ehr.fhir_base: {"client_id": CLIENT_ID}}, **settings})


def _follow(client, url):
    """The browser at the EHR's authorize endpoint, then back at our callback."""
    back = requests.get(url, allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    parts = urllib.parse.urlsplit(back.headers["Location"])
    return client.get(f"{parts.path}?{parts.query}")


def _launch(client, ehr):
    query = urllib.parse.urlencode({"iss": ehr.fhir_base, "launch": ehr.launch("p-1")})
    start = client.get(f"/launch?{query}")
    assert start.status_code == 302, start.get_data(as_text=True)
    return _follow(client, start.headers["Location"]), start.headers["Location"]


def test_a_launch_signs_the_practitioner_in_without_the_password_form(make_app, fresh_ehr):
    app = _app(make_app, fresh_ehr)
    client = app.test_client()
    response, authorize = _launch(client, fresh_ehr)
    assert response.status_code == 303, response.get_data(as_text=True)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize).query))
    assert {"openid", "fhirUser"} <= set(query["scope"].split()) and query["nonce"]
    page = client.get(response.headers["Location"])
    assert page.status_code == 200 and 'name="password"' not in page.get_data(as_text=True)
    user = identities.find(store_mod.from_app(app), fresh_ehr.auth_base, "fhirUser",
                           f"{fresh_ehr.fhir_base}/Practitioner/dr-lee")
    assert (user.display_name, user.role, user.has_password) == ("Dr Ann Lee", "clinician",
                                                                 False)
    # the next launch by the same practitioner finds the same user
    _launch(app.test_client(), fresh_ehr)
    assert len(users.all_users(store_mod.from_app(app))) == 1


def test_without_a_name_claim_the_practitioner_is_named_as_the_ehr_has_them(make_app,
                                                                          fresh_ehr):
    fresh_ehr.configure(user_claims={})
    app = _app(make_app, fresh_ehr)
    response, _ = _launch(app.test_client(), fresh_ehr)
    assert response.status_code == 303
    [user] = users.all_users(store_mod.from_app(app))
    assert user.display_name == "Ann Lee"  # read from the EHR's Practitioner


def test_a_launch_replaces_another_users_session(make_app, fresh_ehr):
    app = _app(make_app, fresh_ehr)
    client = signed_in(app)
    with client.session_transaction() as cookie:
        before = cookie[SESSION_KEY]
    response, _ = _launch(client, fresh_ehr)
    assert response.status_code == 303
    with client.session_transaction() as cookie:
        assert cookie[SESSION_KEY] != before


@pytest.mark.parametrize(("forged", "why"), [
    ({"nonce": "not-the-launchs"}, "nonce"), ({"aud": "another-app"}, "another application")])
def test_an_id_token_not_for_this_launch_stops_it(make_app, fresh_ehr, forged, why):
    fresh_ehr.configure(id_token_claims=forged)
    app = _app(make_app, fresh_ehr)
    response, _ = _launch(app.test_client(), fresh_ehr)
    assert response.status_code == 403
    assert why in response.get_data(as_text=True)
    store = store_mod.from_app(app)
    assert users.all_users(store) == [] and store.patients() == []


@pytest.mark.parametrize(("role", "why"), [("", "not set up to use this app"),
                                         ("surgeon", "launch role setting is wrong")])
def test_launching_may_be_kept_from_creating_users(make_app, fresh_ehr, role, why):
    app = _app(make_app, fresh_ehr, SMART_LAUNCH_ROLE=role)
    response, _ = _launch(app.test_client(), fresh_ehr)
    assert response.status_code == 403
    assert why in response.get_data(as_text=True)
    assert users.all_users(store_mod.from_app(app)) == []


def _save(client, exam_id):
    page = client.get(f"/exams/{exam_id}/pages/slr").get_data(as_text=True)
    version = int(re.search(r'"version": (\d+)', page).group(1))
    saved = client.put(f"/exams/{exam_id}/draft", json={"section": "slr", "answers": {
        "slr.left.onset-angle": 40, "slr.left.response": "leg-pain-below-knee"}},
        headers={"If-Match": f'"{version}"'})
    return saved.get_json()["version"]


def test_a_launched_practitioner_signs_after_logging_in_again_at_the_ehr(make_app, fresh_ehr,
                                                                       validator):
    app = _app(make_app, fresh_ehr)
    client = app.test_client()
    response, _ = _launch(client, fresh_ehr)
    exam_id = response.headers["Location"].split("/")[2]
    version = _save(client, exam_id)
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert "Confirm at your EHR and sign" in review
    url = continue_url(client.post(f"/exams/{exam_id}/sign/elsewhere",
                                   data={"version": version}))
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert (query["prompt"], query["aud"]) == ("login", fresh_ehr.fhir_base)
    signed = _follow(client, url)
    assert signed.status_code == 303, signed.get_data(as_text=True)
    store = store_mod.from_app(app)
    [revision] = store.revisions(exam_id)
    assert revision.response["author"]["display"] == "Dr Ann Lee"
    # the EHR's copy names the EHR's own Practitioner, in the response and the Provenance
    bundle = _queued_bundle(store, exam_id)
    resources = [e["resource"] for e in bundle["entry"]]
    [qr] = [r for r in resources if r["resourceType"] == "QuestionnaireResponse"]
    [prov] = [r for r in resources if r["resourceType"] == "Provenance"]
    assert qr["author"]["reference"] == "Practitioner/dr-lee"
    assert [a["who"].get("reference") for a in prov["agent"]
            if a["type"]["coding"][0]["code"] == "author"] == ["Practitioner/dr-lee"]
    for resource in (qr, prov):
        assert_conformant(validator, resource)
    # our own copy names our Practitioner; reading it names the EHR's as an identifier
    ours = revision.provenance["signature"][0]["who"]["reference"]
    [user] = users.all_users(store)
    assert ours == f"Practitioner/{user.id}"
    practitioner = client.get(f"/fhir/{ours}")
    assert practitioner.status_code == 200, practitioner.get_data(as_text=True)
    assert practitioner.get_json()["identifier"] == [
        {"system": f"{fresh_ehr.fhir_base}/Practitioner", "value": "dr-lee"}]
    assert_conformant(validator, practitioner.get_json())


def test_a_launched_practitioner_who_is_not_asked_again_cannot_sign(make_app, fresh_ehr):
    fresh_ehr.configure(step_up=False)
    app = _app(make_app, fresh_ehr)
    client = app.test_client()
    response, _ = _launch(client, fresh_ehr)
    exam_id = response.headers["Location"].split("/")[2]
    version = _save(client, exam_id)
    refused = _follow(client, continue_url(client.post(f"/exams/{exam_id}/sign/elsewhere",
                                                    data={"version": version})))
    assert refused.status_code == 403
    assert "did not ask for your password again" in refused.get_data(as_text=True)
    assert store_mod.from_app(app).exam(exam_id).state == "draft"


def _queued_bundle(store, exam_id):
    from sqlalchemy import select

    from plugin.adapters.tables import outbox as outbox_table

    with store.engine.connect() as conn:
        return conn.execute(select(outbox_table.c.payload).where(
            outbox_table.c.exam_id == exam_id)).scalar_one()
