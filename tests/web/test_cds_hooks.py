"""CDS Hooks 2.0 over HTTP: discovery, client authentication, the two services, feedback.

The CDS client (an EHR) is simulated with keys made at test time (tests/support/
jwt_keys.py); prefetched Observations are the product's own extraction of golden cases,
as an EHR holds them after delivery.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

import pytest
from flask import Flask

from plugin.core import fhir_models
from plugin.web import cds_hooks
from tests.support import cds
from tests.support.cds import BASE, LUMBAR_MRI, MRI_ORDER, PATIENT_VIEW
from tests.support.conformance import assert_conformant
from tests.support.jwt_keys import ISSUER, JKU, CdsClient

OVERRIDE_SYSTEM = "http://posterior-thigh-exam.org/fhir/CodeSystem/cds-override-reason"


def _register(app: Flask) -> Flask:
    """Until create_app registers the blueprint itself (then this does nothing)."""
    if "cds_hooks" not in app.blueprints:
        app.register_blueprint(cds_hooks.bp)
    return app


@pytest.fixture(scope="module")
def ehr() -> CdsClient:
    return CdsClient()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, ehr: CdsClient):  # type: ignore[no-untyped-def]
    with cds.app_with(tmp_path_factory.mktemp("cds"), cds.settings(ehr)) as made:
        yield _register(made)


def _patient_view(client, ehr, kb, name: str,  # type: ignore[no-untyped-def]
                  **kw: Any) -> list[dict[str, Any]]:
    data = cds.case(name)
    prefetch = {"patient": data["patient"], "observations": cds.observations(kb, data, **kw)}
    response = cds.post(client, ehr, PATIENT_VIEW,
                        cds.body("patient-view", data["patient"]["id"], prefetch=prefetch))
    assert response.status_code == 200, response.get_data(as_text=True)
    found = response.get_json()["cards"]
    for card in found:
        assert len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"] and card["uuid"]
        if card.get("suggestions"):
            assert card["selectionBehavior"] in ("at-most-one", "any")
    return found


def _requests(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a["resource"] for c in found for s in c.get("suggestions", []) for a in s["actions"]
            if a["type"] == "create"]


# --- discovery -----------------------------------------------------------------------

def test_discovery_lists_the_services_without_authentication(client) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    services = response.get_json()["services"]
    assert {(s["id"], s["hook"]) for s in services} == {
        ("posterior-thigh-patient-view", "patient-view"),
        ("posterior-thigh-mri-order", "order-select"),
        ("posterior-thigh-mri-order", "order-sign")}
    for service in services:
        assert service["title"] and service["description"] and service["usageRequirements"]
        assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        assert service["prefetch"]["observations"].startswith(
            "Observation?patient={{context.patientId}}&category=exam,survey")


def test_a_browser_preflight_is_answered(client) -> None:
    response = client.options("/cds-services/posterior-thigh-patient-view", headers={
        "Origin": "https://ehr.example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


# --- authentication ------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_a_well_signed_token_is_accepted(client, ehr, alg: str) -> None:
    response = cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"), alg=alg)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_the_audience_may_be_a_list_naming_the_service(client, ehr) -> None:
    token = ehr.sign(["https://other.example", PATIENT_VIEW])
    response = cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"), token=token)
    assert response.status_code == 200


def _refused(response, reason: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.get_data(as_text=True)
    code, text = cds.refusal(response)
    assert code == "login" and reason in text, text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_no_token_is_refused(client) -> None:
    _refused(client.post("/cds-services/posterior-thigh-patient-view",
                         json=cds.body("patient-view")), "missing Authorization")


def test_a_symmetric_algorithm_is_refused(client, ehr) -> None:
    _refused(cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"), alg="HS256"), "alg")


def test_rs256_is_refused_too(client, ehr) -> None:
    _refused(cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"), alg="RS256"), "alg")


def test_an_unknown_issuer_is_refused(client) -> None:
    stranger = CdsClient("https://stranger.example")
    _refused(cds.post(client, stranger, PATIENT_VIEW, cds.body("patient-view")), "unknown issuer")


def test_a_known_issuer_with_another_key_is_refused(client) -> None:
    impostor = CdsClient(ISSUER)  # right name, wrong keys
    _refused(cds.post(client, impostor, PATIENT_VIEW, cds.body("patient-view")), "signature")


def test_a_token_for_another_service_url_is_refused(client, ehr) -> None:
    token = ehr.sign(MRI_ORDER)
    _refused(cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"), token=token), "aud")


def test_a_token_for_the_discovery_url_is_refused(client, ehr) -> None:
    token = ehr.sign(BASE)  # the spec: aud is the exact URL being called
    _refused(cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"), token=token), "aud")


def test_an_expired_token_is_refused(client, ehr) -> None:
    old = int(dt.datetime.now(dt.timezone.utc).timestamp()) - 3600
    _refused(cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"), iat=old, exp=old + 300),
             "expired")


def test_a_long_lived_token_is_refused(client, ehr) -> None:
    _refused(cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"), lifetime=3600),
             "5 minutes")


@pytest.mark.parametrize("claim", ["jti", "iat", "exp"])
def test_a_missing_claim_is_refused(client, ehr, claim: str) -> None:
    _refused(cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"), drop=(claim,)), claim)


def test_a_replayed_token_is_refused(client, ehr) -> None:
    token = ehr.sign(PATIENT_VIEW)
    assert cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"),
                    token=token).status_code == 200
    _refused(cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"), token=token), "jti")


def test_a_jku_other_than_the_configured_one_is_refused(client, ehr) -> None:
    _refused(cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"),
                      header={"jku": "https://attacker.example/jwks.json"}), "jku")


def test_the_configured_jku_in_the_header_is_accepted(client, ehr) -> None:
    response = cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"), header={"jku": JKU})
    assert response.status_code == 200


def test_garbage_tokens_are_refused_not_crashed(client, ehr) -> None:
    for token in ("abc", "a.b.c", "....", "Zm9v.YmFy.YmF6", "é"):
        response = client.post("/cds-services/posterior-thigh-patient-view",
                               json=cds.body("patient-view"),
                               headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
    basic = client.post("/cds-services/posterior-thigh-patient-view", json=cds.body("patient-view"),
                        headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401


def test_the_configured_audience_is_the_base_of_the_service_urls(make_app, ehr) -> None:
    public = "https://cds.example.org/cds-services"
    app = _register(make_app(cds.settings(ehr, CDS_HOOKS_AUDIENCE=public + "/")))
    client = app.test_client()
    right = ehr.sign(f"{public}/posterior-thigh-patient-view")
    wrong = ehr.sign(PATIENT_VIEW)  # the internal URL the proxy forwarded to
    assert cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"),
                    token=right).status_code == 200
    assert cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"),
                    token=wrong).status_code == 401


def test_a_broken_client_key_stops_start_up(make_app) -> None:
    with pytest.raises(ValueError, match="not a usable JWK Set"):
        _register(make_app({"CDS_HOOKS_CLIENTS": {ISSUER: {"jwks": {"keys": [{"kty": "RSA"}]}}}}))


def test_a_private_client_key_is_refused_at_start_up(make_app, ehr) -> None:
    from joserfc.jwk import KeySet
    private = KeySet([ehr.rsa]).as_dict(private=True)
    with pytest.raises(ValueError, match="private key"):
        _register(make_app({"CDS_HOOKS_CLIENTS": {ISSUER: {"jwks": private}}}))


def test_without_configured_clients_every_call_is_refused(make_app, ehr) -> None:
    client = _register(make_app()).test_client()
    assert client.get("/cds-services").status_code == 200
    _refused(cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view")), "unknown issuer")


# --- patient-view --------------------------------------------------------------------

def test_without_an_exam_only_the_launch_card_is_shown(client, ehr) -> None:
    response = cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view", prefetch={
        "patient": {"resourceType": "Patient", "id": "p-1"},
        "observations": {"resourceType": "Bundle", "type": "searchset", "entry": []}}))
    assert response.status_code == 200
    (card,) = response.get_json()["cards"]
    assert card["indicator"] == "info"
    assert card["links"] == [{"label": "Open the posterior thigh exam",
                              "url": "https://exam.example.org/launch", "type": "smart"}]
    assert len(card["summary"]) < 140


def test_the_launch_url_defaults_to_this_host(make_app, ehr) -> None:
    settings = cds.settings(ehr)
    del settings["SMART_LAUNCH_URL"]
    client = _register(make_app(settings)).test_client()
    response = cds.post(client, ehr, PATIENT_VIEW, cds.body("patient-view"))
    assert response.get_json()["cards"][0]["links"][0]["url"] == "http://localhost/launch"


def test_cauda_equina_exam_gives_a_critical_card(client, ehr, kb) -> None:
    found = _patient_view(client, ehr, kb, "cauda-equina-red-flags")
    assert found[0]["links"][0]["type"] == "smart"  # the launch card stays
    assert found[1]["indicator"] == "critical"
    assert "cauda equina" in found[1]["summary"].lower()
    codes = {c["code"] for r in _requests(found[1:2]) for c in r["code"]["coding"]}
    assert {"emergency-department", "mri-lumbar-spine"} <= codes


def test_hamstring_exam_gives_a_differential_card(client, ehr, kb) -> None:
    found = _patient_view(client, ehr, kb, "triathlete-proximal-hamstring-tendinopathy")
    assert [c["indicator"] for c in found] == ["info", "info"]
    assert "Proximal hamstring tendinopathy" in found[1]["summary"]
    assert "Key findings for it:" in found[1]["detail"]


def test_suggested_service_requests_are_valid_fhir(client, ehr, kb, validator) -> None:
    found = _patient_view(client, ehr, kb, "cauda-equina-red-flags")
    found += _patient_view(client, ehr, kb, "sprinter-proximal-avulsion")
    requests = _requests(found)
    assert len(requests) >= 4
    for resource in requests:
        assert fhir_models.validate(resource) == []
        assert (resource["status"], resource["intent"]) == ("draft", "proposal")
        assert_conformant(validator, resource)


def test_unreadable_prefetched_observations_still_give_the_launch_card(client, ehr, kb,
                                                                        caplog) -> None:
    data = cds.case("disc-radiculopathy-2-weeks-severe")
    bundle = cds.observations(kb, data)
    for entry in bundle["entry"]:  # an EHR that mangled the coded values
        resource = entry["resource"]
        if "valueCodeableConcept" in resource:
            resource["valueCodeableConcept"] = {"text": "??"}
        if "bodySite" in resource:
            resource["bodySite"] = "left"
    with caplog.at_level(logging.WARNING, logger="plugin.web.cds_hooks"):
        response = cds.post(client, ehr, PATIENT_VIEW, cds.body(
            "patient-view", data["patient"]["id"],
            prefetch={"patient": data["patient"], "observations": bundle}))
    assert response.status_code == 200
    assert len(response.get_json()["cards"]) == 1
    assert "could not be read" in caplog.text or "malformed" in caplog.text
    assert data["patient"]["id"] not in caplog.text


# --- order-select / order-sign -------------------------------------------------------

def _order(client, ehr, kb, name: str,  # type: ignore[no-untyped-def]
           hook: str = "order-select", *, orders: dict[str, Any] | None = None,
           **kw: Any) -> list[dict[str, Any]]:
    data = cds.case(name)
    pid = data["patient"]["id"]
    drafts = orders or cds.orders(LUMBAR_MRI)
    context: dict[str, Any] = {"draftOrders": drafts}
    if hook == "order-select":
        context["selections"] = ["ServiceRequest/sr-0"]
    prefetch = {"patient": data["patient"],
                "observations": cds.observations(kb, data, effective=cds.today(), **kw)}
    response = cds.post(client, ehr, MRI_ORDER, cds.body(hook, pid, prefetch=prefetch, **context))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["cards"]


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_early_lumbar_mri_without_red_flags_gets_a_warning(client, ehr, kb, hook: str) -> None:
    (card,) = _order(client, ehr, kb, "disc-radiculopathy-2-weeks-severe", hook)
    assert card["indicator"] == "warning"
    assert card["summary"] == ("Lumbar MRI before 6 weeks of radicular pain without red flags "
                               "rarely changes care")
    assert card["overrideReasons"] and "Chou R" in card["detail"]
    assert "NICE NG59" in card["detail"]


def test_lumbar_mri_at_8_weeks_gets_no_warning(client, ehr, kb) -> None:
    assert _order(client, ehr, kb, "disc-radiculopathy-8-weeks-severe") == []


def test_lumbar_mri_with_a_red_flag_gets_no_warning(client, ehr, kb) -> None:
    assert _order(client, ehr, kb, "disc-radiculopathy-2-weeks-severe",
                  answers={"red-flags.saddle-numbness": True,
                           "red-flags.bladder-dysfunction": True,
                           "neuro.saddle-sensation": "reduced"}) == []


def test_other_orders_get_no_warning(client, ehr, kb) -> None:
    physio = {"system": "http://snomed.info/sct", "code": "308447003"}
    assert _order(client, ehr, kb, "disc-radiculopathy-2-weeks-severe",
                  orders=cds.orders(physio)) == []


def test_order_hooks_with_nothing_prefetched_get_no_card(client, ehr) -> None:
    response = cds.post(client, ehr, MRI_ORDER,
                        cds.body("order-sign", draftOrders=cds.orders(LUMBAR_MRI)))
    assert response.status_code == 200 and response.get_json() == {"cards": []}


# --- bad requests --------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    [], "text", {"hookInstance": "x", "context": {}},
    {"hook": "patient-view", "context": {"patientId": "p-1", "userId": "u"}},
    {"hook": "patient-view", "hookInstance": "x"},
    {"hook": "patient-view", "hookInstance": "x", "context": []},
    {"hook": "patient-view", "hookInstance": "x", "context": {"userId": "u"}},
    {"hook": "patient-view", "hookInstance": "x", "context": {"userId": "u", "patientId": "a b"}},
    {"hook": "order-select", "hookInstance": "x", "context": {"userId": "u", "patientId": "p"}},
    {"hook": "patient-view", "hookInstance": "x",
     "context": {"userId": "u", "patientId": "p"}, "prefetch": {"patient": "Patient/p"}},
    {"hook": "patient-view", "hookInstance": "x",
     "context": {"userId": "u", "patientId": "p"},
     "prefetch": {"patient": {"resourceType": "Patient", "id": "someone-else"}}},
    {"hook": "patient-view", "hookInstance": "x",
     "context": {"userId": "u", "patientId": "p"}, "prefetch": {"observations": [1]}},
    {"hook": "patient-view", "hookInstance": "x", "context": {"userId": "u", "patientId": "p"},
     "fhirAuthorization": {"access_token": "t", "token_type": "Bearer", "expires_in": 300,
                           "scope": "patient/*.read", "subject": "me"}},
])
def test_malformed_requests_get_400_json(client, ehr, body: Any) -> None:
    response = cds.post(client, ehr, PATIENT_VIEW, body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert cds.refusal(response)[0] == "invalid"


def test_the_wrong_hook_for_a_service_is_400(client, ehr) -> None:
    response = cds.post(client, ehr, MRI_ORDER, cds.body("patient-view"))
    assert response.status_code == 400 and "not 'patient-view'" in cds.refusal(response)[1]


def test_malformed_draft_orders_are_400(client, ehr) -> None:
    for orders in ({"resourceType": "Patient"}, {"resourceType": "Bundle", "entry": {}}):
        response = cds.post(client, ehr, MRI_ORDER, cds.body("order-sign", draftOrders=orders))
        assert response.status_code == 400, orders


def test_invalid_json_is_400(client, ehr) -> None:
    response = client.post("/cds-services/posterior-thigh-patient-view", data=b"{not json",
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {ehr.sign(PATIENT_VIEW)}"})
    assert response.status_code == 400 and cds.refusal(response)[0] == "structure"


def test_an_unknown_service_is_404_json(client, ehr) -> None:
    response = cds.post(client, ehr, f"{BASE}/no-such-service", cds.body("patient-view"))
    assert response.status_code == 404 and cds.refusal(response)[0] == "not-found"


def test_a_body_over_the_size_limit_is_413_json(client, ehr) -> None:
    body = cds.body("patient-view", prefetch={"x": {"y": "z" * (2 * 1024 * 1024)}})
    response = cds.post(client, ehr, PATIENT_VIEW, body)
    assert response.status_code == 413 and response.is_json


# --- feedback ------------------------------------------------------------------------

FEEDBACK = {"feedback": [
    {"card": str(uuid.uuid4()), "outcome": "accepted",
     "acceptedSuggestions": [{"id": str(uuid.uuid4())}],
     "outcomeTimestamp": "2026-11-20T10:00:00Z"},
    {"card": str(uuid.uuid4()), "outcome": "overridden",
     "overrideReason": {"reason": {"system": OVERRIDE_SYSTEM, "code": "specialist-requested",
                                   "display": "Requested by a specialist"},
                        "userComment": "busy"},
     "outcomeTimestamp": "2026-11-20T10:01:00+00:00"}]}


def test_feedback_is_accepted_and_logs_nothing_about_the_patient(client, ehr, caplog) -> None:
    url = f"{PATIENT_VIEW}/feedback"
    with caplog.at_level(logging.INFO, logger="plugin.web.cds_hooks"):
        response = cds.post(client, ehr, url, FEEDBACK)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "1 accepted, 1 overridden" in caplog.text and "busy" not in caplog.text


def test_feedback_needs_a_token_for_its_own_url(client, ehr) -> None:
    token = ehr.sign(PATIENT_VIEW)
    response = cds.post(client, ehr, f"{PATIENT_VIEW}/feedback", FEEDBACK, token=token)
    assert response.status_code == 401


@pytest.mark.parametrize("body", [
    {}, {"feedback": []}, {"feedback": [{"card": "c", "outcome": "maybe",
                                         "outcomeTimestamp": "2026-11-20T10:00:00Z"}]},
    {"feedback": [{"card": "c", "outcome": "accepted",
                   "outcomeTimestamp": "2026-11-20T10:00:00Z"}]},
    {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"}]},
])
def test_malformed_feedback_is_400(client, ehr, body: dict[str, Any]) -> None:
    response = cds.post(client, ehr, f"{PATIENT_VIEW}/feedback", body)
    assert response.status_code == 400, response.get_data(as_text=True)


def test_no_csrf_token_is_asked_of_cds_clients(make_app, ehr) -> None:
    """CSRF is on in this app (as in production): the services are a machine API."""
    app = _register(make_app(cds.settings(ehr, WTF_CSRF_ENABLED=True)))
    response = cds.post(app.test_client(), ehr, PATIENT_VIEW, cds.body("patient-view"))
    assert response.status_code == 200, response.get_data(as_text=True)
