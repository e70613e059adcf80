"""Single sign-on with a hospital OpenID provider, and the re-authentication at it before
a signature, against the test authorization server acting as that provider
(tests/support/auth_server.py: discovery, keys, id tokens, PKCE, single-use codes,
client_secret_basic). The browser's hops are made by hand, as in test_smart_launch.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import urllib.parse

import pytest
import requests

from plugin.adapters import (audit, identities, sessions, signing_key, store as store_mod,
                             users)
from plugin.core import signature
from plugin.web import sso
from plugin.web.auth import SESSION_KEY
from tests.support.ehr import running_ehr
from tests.support.signin import PASSWORD
from tests.support.step_up import continue_url
from tests.support import pages

CLIENT_ID = "exam-at-st-mary"
SECRET = "a client secret the provider issued"
CALLBACK = "http://localhost/sso/callback"
CLAIMS = {"name": "Dr Rosa Diaz", "preferred_username": "rdiaz", "roles": ["ward-doctor"]}


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    with running_ehr(tmp_path_factory.mktemp("op")) as running:
        yield running


@pytest.fixture()
def op(provider):
    provider.reset()
    provider._call(f"{provider.auth_base}/_config", {"clients": {CLIENT_ID: {
        "redirect_uris": [CALLBACK], "secret": SECRET}}})
    provider.configure(subject="rosa-7f3", user_claims=CLAIMS)
    return provider


def _settings(op, **overrides):
    entry = {"name": "stmary", "label": "St Mary's", "issuer": op.auth_base,
             "client_id": CLIENT_ID, "client_secret": SECRET, "role_claim": "roles",
             "roles": {"ward-doctor": "clinician", "ward-assistant": "assistant"},
             "create_users": True, **overrides}
    return {"WTF_CSRF_ENABLED": False, "OIDC_PROVIDERS": [entry]}


@pytest.fixture()
def app(make_app, op):
    return make_app(_settings(op))


def _sign_in(client, op):
    """The whole round trip: our redirect, the provider's answer, our callback."""
    start = client.get("/sso/stmary?next=/patients")
    assert start.status_code == 302, start.get_data(as_text=True)
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    parts = urllib.parse.urlsplit(back.headers["Location"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == CALLBACK
    return client.get(f"{parts.path}?{parts.query}"), start.headers["Location"]


def _refusals(op):
    return [r["description"] for r in op.auth_state()["rejected"]]


def test_the_sign_in_page_offers_the_provider_beside_the_password_form(app):
    page = app.test_client().get("/login").get_data(as_text=True)
    assert "Sign in with St Mary&#39;s" in page
    assert 'href="/sso/stmary?next=/patients"' in page
    assert 'name="password"' in page


def test_a_first_sign_in_creates_the_user_with_the_mapped_role_in_a_new_session(app, op):
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie[SESSION_KEY] = "planted-before-sign-in"
    response, authorize = _sign_in(client, op)
    assert response.status_code == 303 and response.headers["Location"] == "/patients"
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize).query))
    assert query["code_challenge_method"] == "S256" and query["nonce"] and query["state"]
    assert set(query["scope"].split()) >= {"openid"}
    store = store_mod.from_app(app)
    user = identities.find(store, op.auth_base, "oidc", "rosa-7f3")
    assert (user.username, user.display_name, user.role) == ("rdiaz", "Dr Rosa Diaz",
                                                             "clinician")
    assert not user.has_password
    with client.session_transaction() as cookie:
        assert cookie[SESSION_KEY] != "planted-before-sign-in"
    assert client.get("/patients").status_code == 200
    logins = [audit.facts(json.loads(e)) for e in audit.events_since(store.engine, None)
              if json.loads(e)["subtype"][0]["code"] == "110122"]
    assert [(f.agent, f.outcome) for f in logins] == [("rdiaz", "0")]
    # the same person again: the same user, matched on issuer + subject
    op.configure(user_claims={**CLAIMS, "preferred_username": "someone-else"})
    again, _ = _sign_in(app.test_client(), op)
    assert again.status_code == 303
    assert [u.username for u in users.all_users(store)] == ["rdiaz"]
    assert _refusals(op) == []


def test_without_permission_to_create_users_a_stranger_is_refused_and_told_why(make_app, op):
    app = make_app(_settings(op, create_users=False))
    response, _ = _sign_in(app.test_client(), op)
    assert response.status_code == 403
    assert "not set up for this app yet" in response.get_data(as_text=True)
    assert users.all_users(store_mod.from_app(app)) == []


@pytest.mark.parametrize(("roles", "expected"), [
    (["ward-assistant"], "assistant"), (["ward-doctor", "ward-assistant"], "clinician"),
    ("ward-assistant", "assistant")])
def test_the_role_comes_from_the_providers_claim(app, op, roles, expected):
    op.configure(user_claims={**CLAIMS, "roles": roles})
    response, _ = _sign_in(app.test_client(), op)
    assert response.status_code == 303
    assert identities.find(store_mod.from_app(app), op.auth_base, "oidc",
                           "rosa-7f3").role == expected


def test_a_claim_that_maps_to_no_role_is_refused(app, op):
    op.configure(user_claims={**CLAIMS, "roles": ["visitor"]})
    response, _ = _sign_in(app.test_client(), op)
    assert response.status_code == 403
    assert "has no role in this app" in response.get_data(as_text=True)


@pytest.mark.parametrize(("forged", "why"), [
    ({"aud": "another-app"}, "another application"),
    ({"aud": [CLIENT_ID, "another-app"]}, "authorized party"),
    ({"aud": [CLIENT_ID, "another-app"], "azp": "another-app"}, "another application"),
    ({"nonce": "not-the-one-we-sent"}, "nonce"),
    ({"iss": "https://impostor.example"}, "another server"),
    ({"exp": 1000}, "expired"),
])
def test_an_id_token_not_meant_for_this_sign_in_is_refused(app, op, forged, why):
    op.configure(id_token_claims=forged)
    response, _ = _sign_in(app.test_client(), op)
    assert response.status_code == 403
    assert why in response.get_data(as_text=True)
    assert users.all_users(store_mod.from_app(app)) == []


def test_a_shared_audience_naming_us_as_authorized_party_is_accepted(app, op):
    op.configure(id_token_claims={"aud": [CLIENT_ID, "another-app"], "azp": CLIENT_ID})
    response, _ = _sign_in(app.test_client(), op)
    assert response.status_code == 303


def test_a_callback_is_used_once_and_a_wrong_client_secret_is_refused(make_app, op):
    app = make_app(_settings(op))
    client = app.test_client()
    start = client.get("/sso/stmary")
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    path = urllib.parse.urlsplit(back.headers["Location"])
    assert client.get(f"{path.path}?{path.query}").status_code == 303
    replay = client.get(f"{path.path}?{path.query}")
    assert replay.status_code == 400 and "already used" in replay.get_data(as_text=True)
    wrong = make_app(_settings(op, client_secret="not the secret"))
    response, _ = _sign_in(wrong.test_client(), op)
    assert response.status_code == 403 and "invalid_client" in response.get_data(as_text=True)


# -- re-authentication before a signature -------------------------------------------------



def _step_up(client, exam_id, version):
    url = continue_url(client.post(f"/exams/{exam_id}/sign/elsewhere",
                                   data={"version": version}))
    back = requests.get(url, allow_redirects=False, timeout=10)
    parts = urllib.parse.urlsplit(back.headers["Location"])
    return client.get(f"{parts.path}?{parts.query}"), url


def test_an_sso_user_signs_after_logging_in_again_at_the_provider(app, op):
    op.configure(signed_in_at=int(time.time()) - 3600)  # the sign-in an hour ago
    client = app.test_client()
    _sign_in(client, op)
    exam_id, version = pages.ready_exam(client)
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert "Confirm at St Mary&#39;s and sign" in review and 'name="password"' not in review
    before = int(time.time())
    signed, authorize = _step_up(client, exam_id, version)
    assert signed.status_code == 303, signed.get_data(as_text=True)
    assert signed.headers["Location"] == f"/exams/{exam_id}/record"
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize).query))
    assert (query["prompt"], query["max_age"]) == ("login", "0")
    store = store_mod.from_app(app)
    [revision] = store.revisions(exam_id)
    assert revision.answers["slr.left.onset-angle"] == 40
    [sig] = revision.provenance["signature"]
    claims = signature.verify(revision.response, sig, signing_key.public_jwks(
        app.extensions[signing_key.EXTENSION_KEY]))
    assert claims.username == "rdiaz"
    assert claims.authenticated_at.timestamp() >= before - 1  # the new login's auth_time


def test_a_provider_that_does_not_ask_again_cannot_confirm_a_signature(app, op):
    op.configure(signed_in_at=int(time.time()) - 3600, step_up=False)
    client = app.test_client()
    _sign_in(client, op)
    exam_id, version = pages.ready_exam(client)
    refused, _ = _step_up(client, exam_id, version)
    assert refused.status_code == 403
    assert "did not ask for your password again" in refused.get_data(as_text=True)
    exam = store_mod.from_app(app).exam(exam_id)
    assert exam.state == "draft" and exam.answers["slr.left.onset-angle"] == 40


def test_a_user_with_no_way_to_confirm_is_told_why_and_cannot_sign(make_app, op):
    app = make_app(_settings(op, step_up="none"))
    client = app.test_client()
    _sign_in(client, op)
    exam_id, version = pages.ready_exam(client)
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert "You cannot sign here" in review and 'name="password"' not in review
    refused = client.post(f"/exams/{exam_id}/sign/elsewhere", data={"version": version})
    assert refused.status_code == 422
    assert "set a password for rdiaz" in refused.get_data(as_text=True)
    assert client.post(f"/exams/{exam_id}/sign", data={
        "version": version, "password": ""}).status_code == 422
    assert store_mod.from_app(app).exam(exam_id).state == "draft"


def test_with_a_provider_that_cannot_step_up_the_local_password_signs(make_app, op):
    app = make_app(_settings(op, step_up="none"))
    client = app.test_client()
    _sign_in(client, op)
    users.set_password(store_mod.from_app(app), "rdiaz", PASSWORD,
                       now=dt.datetime.now(dt.timezone.utc))
    exam_id, version = pages.ready_exam(client)
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert 'name="password"' in review and "Confirm at" not in review
    signed = client.post(f"/exams/{exam_id}/sign", data={"version": version,
                                                         "password": PASSWORD})
    assert signed.status_code == 303


def test_signed_out_before_coming_back_nothing_is_signed_or_shown(app, op):
    client = app.test_client()
    _sign_in(client, op)
    exam_id, version = pages.ready_exam(client)
    url = continue_url(client.post(f"/exams/{exam_id}/sign/elsewhere",
                                   data={"version": version}))
    back = requests.get(url, allow_redirects=False, timeout=10)
    store = store_mod.from_app(app)
    sessions.end_all(store, users.by_username(store, "rdiaz").id)  # e.g. the idle timeout
    parts = urllib.parse.urlsplit(back.headers["Location"])
    refused = client.get(f"{parts.path}?{parts.query}")
    assert refused.status_code == 403
    page = refused.get_data(as_text=True)
    assert "signed out before the signature was confirmed" in page and "Silva" not in page
    assert store_mod.from_app(app).exam(exam_id).state == "draft"


def test_the_pending_sign_in_is_sealed_in_the_cookie(app):
    client = app.test_client()
    start = client.get("/sso/stmary")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(start.headers["Location"]).query))
    with client.session_transaction() as cookie:
        held = json.dumps(dict(cookie))
    assert query["state"] in held  # the key it is found by (the state is in URLs anyway)
    assert query["nonce"] not in held and query["code_challenge"] not in held
    assert "verifier" not in held


@pytest.mark.parametrize(("entry", "why"), [
    ({"client_secret": None}, "client_secret or private_key_jwt"),
    ({"roles": {"ward-doctor": "surgeon"}}, "roles maps claim values"),
    ({"step_up": "sometimes"}, "step_up is one of"),
    ({"issuer": ""}, "needs issuer")])
def test_unusable_provider_settings_stop_start_up_saying_why(make_app, op, entry, why):
    settings = _settings(op)
    settings["OIDC_PROVIDERS"] = [{**settings["OIDC_PROVIDERS"][0], **entry}]
    with pytest.raises(sso.ProviderSettingError, match=why):
        make_app(settings)


def test_a_provider_may_authenticate_us_by_private_key_jwt(make_app, op, tmp_path):
    from joserfc.jwk import KeySet, RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": "exam-1"}, private=True)
    key_file = tmp_path / "sso-key.jwk"
    key_file.write_text(json.dumps(key.as_dict(private=True)), encoding="utf-8")
    op._call(f"{op.auth_base}/_config", {"clients": {CLIENT_ID: {
        "redirect_uris": [CALLBACK], "jwks": KeySet([key]).as_dict(private=False)}}})
    app = make_app(_settings(op, client_secret=None, private_key_jwt=str(key_file)))
    response, _ = _sign_in(app.test_client(), op)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert _refusals(op) == []


def test_a_discovery_document_naming_another_issuer_is_refused(make_app, op):
    app = make_app(_settings(op, issuer=op.auth_base + "/"))
    response = app.test_client().get("/sso/stmary")
    assert response.status_code == 502
    assert "names another issuer" in response.get_data(as_text=True)


# -- the provider's strictness on the sign-on path ------------------------------------------

def _authorized(client) -> dict[str, str]:
    """Start a sign-in in ``client`` and let the provider answer: its ``code`` and
    ``state``, not yet brought back to our callback."""
    start = client.get("/sso/stmary?next=/patients")
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back.headers["Location"]).query))


def _assert_refused_clearly(response, code: str) -> str:
    """A refusal page in words (never a 500), no code in it, nobody signed in."""
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "Sign-in refused" in page and "The sign-in was refused" in page
    assert "invalid_grant" in page and code not in page
    return page


def test_the_provider_refuses_a_reused_code_and_we_say_so(app, op):
    """A code already exchanged, brought back again under another pending sign-in (a
    replay that our single-use state cannot catch), is refused by the provider; the
    product shows the refusal and creates no session."""
    first, second = app.test_client(), app.test_client()
    used = _authorized(first)
    pending = _authorized(second)
    assert first.get(f"/sso/callback?{urllib.parse.urlencode(used)}").status_code == 303
    replay = second.get("/sso/callback?" + urllib.parse.urlencode(
        {"code": used["code"], "state": pending["state"]}))
    _assert_refused_clearly(replay, used["code"])
    assert _refusals(op) == ["authorization code was already used"]
    assert second.get("/patients").status_code == 302  # still signed out
    store = store_mod.from_app(app)
    logins = [audit.facts(json.loads(e)) for e in audit.events_since(store.engine, None)
              if json.loads(e)["subtype"][0]["code"] == "110122"]
    assert sorted(f.outcome for f in logins) == ["0", "4"]


def test_the_provider_refuses_a_code_with_another_sign_ins_verifier(app, op):
    """A code exchanged with the PKCE verifier of another sign-in (a code intercepted
    and brought to another browser) is refused; nobody is created or signed in."""
    victim, thief = app.test_client(), app.test_client()
    stolen = _authorized(victim)
    own = _authorized(thief)
    response = thief.get("/sso/callback?" + urllib.parse.urlencode(
        {"code": stolen["code"], "state": own["state"]}))
    _assert_refused_clearly(response, stolen["code"])
    assert _refusals(op) == ["code_verifier does not match the code_challenge"]
    assert users.all_users(store_mod.from_app(app)) == []


def test_the_provider_refuses_an_unregistered_redirect_uri_without_coming_back(app, op):
    """Registered elsewhere, our callback is never sent the browser: the provider answers
    itself (400) and redirects nowhere, so no code reaches any address."""
    op._call(f"{op.auth_base}/_config", {"clients": {CLIENT_ID: {
        "redirect_uris": ["https://exam.example.org/sso/callback"], "secret": SECRET}}})
    start = app.test_client().get("/sso/stmary")
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    assert back.status_code == 400 and "Location" not in back.headers
    assert _refusals(op) == ["redirect_uri is not registered for this client"]
    assert users.all_users(store_mod.from_app(app)) == []


def test_a_provider_error_sent_back_is_shown_as_a_refusal_page(app, op):
    op.configure(deny=True)
    response, _ = _sign_in(app.test_client(), op)
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "Sign-in refused" in page and "The sign-in was not completed: access_denied" in page
    assert users.all_users(store_mod.from_app(app)) == []
