"""An integrator of the FHIR API as SMART Backend Services: it gets a token with a
signed assertion and reads exactly what its scopes allow; every refusal says why in
OAuth's (or RFC 6750's) own terms."""
from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import pytest

from plugin.adapters import audit, clients, store as storage
from tests.support import tablet
from tests.support.api_client import (NOW, TOKEN_URL, Integrator, ask, bearer, register,
                                      token)
from tests.support.loopback import Quiet, Threaded



def refused(response: Any, error: str, reason: str, status: int = 401) -> None:
    body = response.get_json()
    assert response.status_code == status, body
    assert body["error"] == error and reason in body["error_description"], body
    assert response.headers["Cache-Control"] == "no-store"


@pytest.fixture()
def api(make_app):
    return make_app({"WTF_CSRF_ENABLED": True})


def test_discovery_names_the_token_endpoint_and_what_it_accepts(api) -> None:
    response = api.test_client().get("/fhir/.well-known/smart-configuration")
    assert response.status_code == 200
    config = response.get_json()
    assert config["token_endpoint"] == TOKEN_URL
    assert config["grant_types_supported"] == ["client_credentials"]
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert config["capabilities"] == ["client-confidential-asymmetric", "permission-v2"]
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert {"system/Observation.rs", "system/QuestionnaireResponse.crs",
            "system/Patient.r", "system/AuditEvent.rs"} <= set(config["scopes_supported"])


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_a_registered_client_gets_a_short_lived_token_with_either_algorithm(api, alg) -> None:
    integrator = register(api)
    response = ask(api, integrator, "system/Observation.rs system/Patient.r",
                   assertion=integrator.assertion(alg=alg))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300
    assert body["scope"] == "system/Observation.rs"  # Patient.r is not registered
    assert "refresh_token" not in body
    assert response.headers["Cache-Control"] == "no-store"


def test_the_client_reads_exactly_what_its_scopes_allow_and_is_audited(api, kb, form) -> None:
    ana = tablet.patient(api)
    tablet.sign(api, kb, tablet.draft(api, form, ana), ana, tablet.MARCH)
    integrator = register(api)
    access = token(api, integrator)
    http = api.test_client()
    found = http.get(f"/fhir/Observation?patient={ana.id}", headers=bearer(access))
    assert found.status_code == 200 and found.get_json()["total"] > 0
    first = found.get_json()["entry"][0]["resource"]["id"]
    assert http.get(f"/fhir/Observation/{first}", headers=bearer(access)).status_code == 200
    for path, scope in ((f"/fhir/QuestionnaireResponse?patient={ana.id}",
                         "system/QuestionnaireResponse.s"),
                        (f"/fhir/Patient/{ana.id}", "system/Patient.r"),
                        ("/fhir/AuditEvent", "system/AuditEvent.s")):
        denied = http.get(path, headers=bearer(access))
        assert denied.status_code == 403, path
        assert scope in denied.get_json()["issue"][0]["details"]["text"]
        assert denied.headers["WWW-Authenticate"] == (
            f'Bearer realm="posterior-thigh-exam", error="insufficient_scope", '
            f'scope="{scope}"')
    # the search was audited with the client as the requesting agent
    _, events = audit.search(storage.from_app(api).engine, agents={integrator.iss})
    searched = [e for e in events if e["type"]["code"] == "rest"]
    assert searched, events
    agent = searched[-1]["agent"][0]
    assert agent["requestor"] is True
    assert agent["who"]["identifier"]["value"] == integrator.iss
    assert agent["who"]["display"] == "Lab integrator"
    # and each refused call too, saying which scope was missing
    denials = [e for e in events if e.get("outcome") == "8"]
    assert len(denials) == 3
    assert any("system/AuditEvent.s" in e["outcomeDesc"] for e in denials)


def test_extract_needs_questionnaire_response_create(api) -> None:
    reader = register(api, "system/Observation.rs", name="Reader")
    writer = register(api, "system/QuestionnaireResponse.c", name="Writer")
    body = {"slr.left.onset-angle": 40}
    http = api.test_client()
    denied = http.post("/fhir/QuestionnaireResponse/$extract", json=body,
                       headers=bearer(token(api, reader)))
    assert denied.status_code == 403
    assert "system/QuestionnaireResponse.c" in denied.get_data(as_text=True)
    done = http.post("/fhir/QuestionnaireResponse/$extract", json=body,
                     headers=bearer(token(api, writer, "system/QuestionnaireResponse.c")))
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["resourceType"] == "Parameters"


@pytest.mark.parametrize(("make", "reason"), [
    # another key under the registered kid
    (lambda i: Integrator(i.iss).assertion(), "signature does not verify"),
    (lambda i: i.assertion(header={"kid": "not-registered"}), "kid is not one of"),
    (lambda i: i.assertion(lifetime=600), "more than 5 minutes ahead"),
    (lambda i: i.assertion(lifetime=-120), "expired"),
    (lambda i: i.assertion(aud="http://localhost/fhir"), "aud does not name"),
    (lambda i: i.assertion(sub="someone-else"), "sub must equal iss"),
    (lambda i: i.assertion(alg="RS256"), "alg must be one of RS384, ES384"),
    (lambda i: i.assertion(alg="HS384"), "alg must be one of"),
    (lambda i: i.assertion(header={"typ": "at+jwt"}), "typ must be JWT"),
    (lambda i: i.assertion(header={"jku": "https://evil.example/jwks"}), "jku"),
    (lambda i: i.assertion(drop=("jti",)), "jti is required"),
    (lambda i: i.assertion(drop=("exp",)), "exp is required"),
    (lambda i: i.assertion(iat=int(time.time()) + 600), "iat is in the future"),
    (lambda i: i.assertion(iss="not-a-client", sub="not-a-client"), "unknown issuer"),
])
def test_a_bad_assertion_is_invalid_client(api, make, reason) -> None:
    integrator = register(api)
    refused(ask(api, integrator, assertion=make(integrator)), "invalid_client", reason)


def test_an_assertion_without_iat_is_accepted(api) -> None:
    """SMART names iss, sub, aud, exp and jti; iat is optional (RFC 7523 §3)."""
    integrator = register(api)
    assert ask(api, integrator, assertion=integrator.assertion(drop=("iat",))).status_code \
        == 200


def test_a_replayed_assertion_is_refused_by_another_app_on_the_same_database(
        make_app, database_url) -> None:
    # two processes' apps, one database (SQLite and the real PostgreSQL)
    first = make_app({"DATABASE_URL": database_url})
    second = make_app({"DATABASE_URL": database_url})
    integrator = register(first)
    assertion = integrator.assertion()
    assert ask(first, integrator, assertion=assertion).status_code == 200
    refused(ask(first, integrator, assertion=assertion), "invalid_client", "jti already used")
    refused(ask(second, integrator, assertion=assertion), "invalid_client", "jti already used")


def test_the_token_request_says_what_is_wrong_in_oauth_terms(api) -> None:
    integrator = register(api)
    refused(ask(api, integrator, "system/AuditEvent.rs"), "invalid_scope",
            "None of the requested scopes", 400)
    refused(ask(api, integrator, "patient/Observation.rs"), "invalid_scope",
            "only system/ scopes", 400)
    refused(ask(api, integrator, "system/Observation.sr"), "invalid_scope", "in-order", 400)
    refused(ask(api, integrator, grant_type="authorization_code"), "unsupported_grant_type",
            "client_credentials", 400)
    refused(ask(api, integrator, client_assertion_type="password"), "invalid_client",
            "client_assertion_type", 401)
    refused(ask(api, integrator, scope=""), "invalid_request", "scope is required", 400)


def test_token_issue_and_refusal_are_audited(api) -> None:
    integrator = register(api)
    token(api, integrator)
    ask(api, integrator, assertion=integrator.assertion(lifetime=600))
    _, events = audit.search(storage.from_app(api).engine, agents={integrator.iss})
    issued = [e for e in events if e["subtype"][0]["code"] == "ITI-71"]
    assert sorted(e["outcome"] for e in issued) == ["0", "4"]
    assert all(e["type"]["code"] == "110114" for e in issued)
    assert "more than 5 minutes ahead" in next(e for e in issued if e["outcome"] == "4")[
        "outcomeDesc"]


def test_a_disabled_client_loses_its_tokens_and_gets_no_new_one(api) -> None:
    integrator = register(api)
    access = token(api, integrator)
    http = api.test_client()
    assert http.get("/fhir/Observation?patient=p", headers=bearer(access)).status_code == 200
    clients.disable(storage.from_app(api), "Lab integrator", now=NOW)
    gone = http.get("/fhir/Observation?patient=p", headers=bearer(access))
    assert gone.status_code == 401
    assert 'error="invalid_token"' in gone.headers["WWW-Authenticate"]
    assert gone.get_json()["resourceType"] == "OperationOutcome"
    refused(ask(api, integrator), "invalid_client", "unknown issuer")


def test_an_expired_or_unknown_token_is_refused(make_app) -> None:
    app = make_app({"API_TOKEN_SECONDS": 1})
    integrator = register(app)
    access = token(app, integrator)
    http = app.test_client()
    assert http.get("/fhir/Observation?patient=p", headers=bearer(access)).status_code == 200
    time.sleep(1.2)
    assert http.get("/fhir/Observation?patient=p", headers=bearer(access)).status_code == 401
    assert http.get("/fhir/Observation?patient=p",
                    headers=bearer("made-up")).status_code == 401
    assert http.get("/fhir/Observation?patient=p",
                    headers={"Authorization": "Basic eDp5"}).status_code == 401


def test_a_refused_token_is_audited_as_a_failed_access_never_with_the_token(make_app) -> None:
    """An unknown, expired or revoked token leaves a failed-access AuditEvent (outcome
    8, no patient: nothing was served) naming the unknown client and its network
    address; the token itself never reaches the trail."""
    app = make_app({"API_TOKEN_SECONDS": 1})
    integrator = register(app)
    access = token(app, integrator)
    http = app.test_client()
    engine = storage.from_app(app).engine
    _, before = audit.search(engine)
    time.sleep(1.2)  # expired
    expired = http.get("/fhir/Observation?patient=p", headers=bearer(access),
                       environ_base={"REMOTE_ADDR": "203.0.113.9"})
    unknown = http.get("/fhir/Patient/p-1", headers=bearer("made-up-token-value"))
    assert (expired.status_code, unknown.status_code) == (401, 401)
    total, events = audit.search(engine)
    refused = [e for e in events if e["outcome"] == "8"]
    assert total == len(before) + 2 and len(refused) == 2
    by_subtype = {e["subtype"][0]["code"]: e for e in refused}
    assert set(by_subtype) == {"search-type", "read"}
    for event in refused:
        requestor = next(a for a in event["agent"] if a["requestor"])
        assert requestor["who"] == {"display": "unknown client"}
        assert all((e.get("role") or {}).get("code") != "1"  # no patient
                   for e in event.get("entity", []))
        assert "unknown, expired or revoked" in event["outcomeDesc"]
    assert next(a for a in by_subtype["search-type"]["agent"] if a["requestor"])[
        "network"]["address"] == "203.0.113.9"
    assert "Patient/p-1" in [e.get("what", {}).get("reference")
                             for e in by_subtype["read"]["entity"]]
    text = json.dumps(events)
    assert access not in text and "made-up-token-value" not in text


def test_a_token_is_bound_to_the_fhir_base_it_was_issued_for(make_app) -> None:
    here = make_app({"FHIR_BASE_URL": "https://a.example/fhir"})
    there = make_app({"FHIR_BASE_URL": "https://b.example/fhir"})  # same database
    access = token(here, register(here))
    assert here.test_client().get("/fhir/Observation?patient=p",
                                  headers=bearer(access)).status_code == 200
    other = there.test_client().get("/fhir/Observation?patient=p", headers=bearer(access))
    assert other.status_code == 401 and "another FHIR server" in other.get_data(as_text=True)


class _KeyServer(Quiet):
    """Serves a JWK Set (``keys``) with a Cache-Control header; counts the requests."""

    keys: dict[str, Any] = {}
    cache_control = "max-age=300"
    hits: list[str] = []
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802
        with self.lock:
            type(self).hits.append(self.path)
        body = json.dumps(type(self).keys).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", type(self).cache_control)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def key_server():
    handler = type("Keys", (_KeyServer,), {"hits": [], "keys": {}})
    server = Threaded(handler)
    yield handler, server.base + "/jwks.json"
    server.close()


def test_a_jwks_url_client_is_served_by_its_own_key_server(api, key_server) -> None:
    handler, url = key_server
    integrator = register(api, jwks_url=url)
    handler.keys = {"keys": [integrator.jwks()["keys"][0]]}  # the RSA key only
    assert ask(api, integrator).status_code == 200
    assert ask(api, integrator).status_code == 200  # cached: max-age=300
    assert len(handler.hits) == 1
    # the client rotates to its EC key: the unknown kid refetches once
    handler.keys = integrator.jwks()
    assert ask(api, integrator, assertion=integrator.assertion(alg="ES384")).status_code == 200
    assert len(handler.hits) == 2
    # a jku naming the registered URL is accepted, any other refused
    assert ask(api, integrator, assertion=integrator.assertion(
        header={"jku": url})).status_code == 200
    refused(ask(api, integrator, assertion=integrator.assertion(
        header={"jku": url + "?other"})), "invalid_client", "jku")


def test_an_unreachable_key_server_refuses_the_token(api) -> None:
    from tests.support.served import free_port

    integrator = register(api, jwks_url=f"http://127.0.0.1:{free_port()}/jwks.json")
    refused(ask(api, integrator), "invalid_client", "keys could not be fetched")


def test_the_key_cache_respects_no_store(api, key_server) -> None:
    handler, url = key_server
    handler.cache_control = "no-store"
    integrator = register(api, jwks_url=url)
    handler.keys = integrator.jwks()
    assert ask(api, integrator).status_code == 200
    assert ask(api, integrator).status_code == 200
    assert len(handler.hits) == 2  # fetched again: the server forbade keeping it


def test_sessions_keep_their_role_checks(api) -> None:
    from tests.support.signin import signed_in
    assistant = signed_in(api, "assistant")
    assert assistant.get("/fhir/AuditEvent").status_code == 403  # admin only, as before
    assert signed_in(api, "admin").get("/fhir/AuditEvent").status_code == 200


def test_the_readme_table_is_the_routes_declarations(app) -> None:
    from pathlib import Path

    from plugin.web.api_access import route_scopes

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### API access for integrators (SMART Backend Services)")[1]
    table = section.split("| route | interaction | scope |\n|---|---|---|\n")[1].split("\n\n")[0]
    def readable(path: str) -> str:  # /fhir/Patient/<id_> -> /fhir/Patient/{id}
        return re.sub(r"<(?:[a-z_]+:)?([a-z]+)_?>", r"{\1}", path)

    declared = [f"| `{r.method} {readable(r.path)}` | {r.label} | `{r.need}` |"
                for r in route_scopes(app)]
    assert table.splitlines() == declared
