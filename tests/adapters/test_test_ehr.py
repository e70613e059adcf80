"""The test EHR refuses what a strict EHR refuses, so product tests against it mean
something: real HTTP to the auth and FHIR server processes (tests/support/ehr.py),
real PKCE, real JWTs made here with joserfc, no product code."""
from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from tests.support import module_server
from tests.support.ehr import TestEhr, running_ehr

APP = "exam-app"
REDIRECT = "https://plugin.example.org/smart/callback"
BACKEND = "exam-backend"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PATIENT = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Silva"}],
           "identifier": [{"system": "urn:mrn", "value": "123"}]}
OTHER = {"resourceType": "Patient", "id": "p2", "name": [{"family": "Osei"}]}
ENCOUNTER = {"resourceType": "Encounter", "id": "e1", "status": "in-progress",
             "class": {"code": "AMB"}, "subject": {"reference": "Patient/p1"}}
OBSERVATIONS = [{"resourceType": "Observation", "id": f"o{n}", "status": "final",
                 "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                 "subject": {"reference": f"Patient/{patient}"}}
                for n, patient in ((1, "p1"), (2, "p2"))]


class Backend:
    """A backend-services client's key pair (RS384 and ES384), made at test time."""

    def __init__(self) -> None:
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
        self.ec = ECKey.generate_key("P-384", parameters={"kid": "ec-1"})

    def jwks(self) -> dict[str, Any]:
        return KeySet([self.rsa, self.ec]).as_dict(private=False)

    def assertion(self, token_url: str, *, alg: str = "RS384", lifetime: int = 240,
                  client_id: str = BACKEND, header: dict[str, Any] | None = None,
                  **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": client_id, "sub": client_id, "aud": token_url,
                   "exp": now + lifetime, "jti": str(uuid.uuid4()), **claims}
        key: Any = self.ec if alg.startswith("ES") else self.rsa
        return jwt.encode({"alg": alg, "typ": "JWT", "kid": key.kid, **(header or {})},
                          payload, key, algorithms=[alg])


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> TestEhr:
    with running_ehr(tmp_path_factory.mktemp("ehr")) as ehr:
        yield ehr


@pytest.fixture(scope="module")
def backend() -> Backend:
    return Backend()


@pytest.fixture()
def ehr(running: TestEhr, backend: Backend) -> TestEhr:
    running.reset()
    running.register_client(APP, [REDIRECT])
    running.register_client(BACKEND, [], jwks=backend.jwks())
    running.configure(standalone_patient="p1", fhir_user="Practitioner/dr-lee")
    running.seed(PATIENT, OTHER, ENCOUNTER, *OBSERVATIONS)
    return running


# -- helpers: what a SMART client does, written out by hand ---------------------------

def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def authorize(ehr: TestEhr, challenge: str, **overrides: str | None) -> requests.Response:
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": APP, "redirect_uri": REDIRECT,
        "scope": "launch openid fhirUser patient/*.rs offline_access", "state": "st-1",
        "aud": ehr.fhir_base, "code_challenge": challenge, "code_challenge_method": "S256"}
    params.update(overrides)
    return requests.get(f"{ehr.auth_base}/authorize",
                        params={k: v for k, v in params.items() if v is not None},
                        allow_redirects=False, timeout=10)


def redirected(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def token(ehr: TestEhr, **form: str) -> requests.Response:
    return requests.post(f"{ehr.auth_base}/token", data=form, timeout=10)


def code_for(ehr: TestEhr, challenge: str, **overrides: str | None) -> str:
    return redirected(authorize(ehr, challenge, **overrides))["code"]


def exchange(ehr: TestEhr, code: str, verifier: str, **extra: str) -> requests.Response:
    return token(ehr, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                 client_id=APP, code_verifier=verifier, **extra)


def claims_of(ehr: TestEhr, value: str) -> dict[str, Any]:
    """A token's claims, verified with the auth server's published keys."""
    keys = KeySet.import_key_set(requests.get(f"{ehr.auth_base}/jwks", timeout=10).json())
    decoded = jwt.decode(value, keys, algorithms=["RS384"])
    assert decoded.header["kid"] == "as-1"
    return decoded.claims


def launched(ehr: TestEhr, scope: str = "launch patient/*.rs") -> dict[str, Any]:
    """A successful EHR launch for patient p1, encounter e1: the token answer."""
    verifier, challenge = pkce()
    code = code_for(ehr, challenge, scope=scope, launch=ehr.launch("p1", "e1"))
    answer = exchange(ehr, code, verifier)
    assert answer.status_code == 200, answer.text
    return answer.json()


def backend_token(ehr: TestEhr, backend: Backend, scope: str, **kwargs: Any) -> str:
    answer = token(ehr, grant_type="client_credentials", scope=scope,
                   client_assertion_type=ASSERTION_TYPE,
                   client_assertion=backend.assertion(f"{ehr.auth_base}/token", **kwargs))
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def fhir(ehr: TestEhr, method: str, path: str, access_token: str | None = None,
         **kwargs: Any) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if access_token:
        headers["Authorization"] = f"Bearer {access_token}"
    return requests.request(method, f"{ehr.fhir_base}{path}", headers=headers, timeout=10,
                            **kwargs)


def last_rejection(ehr: TestEhr) -> dict[str, str]:
    return ehr.auth_state()["rejected"][-1]


# -- SMART App Launch -----------------------------------------------------------------

def test_an_ehr_launch_with_pkce_gets_tokens_with_its_context(ehr: TestEhr) -> None:
    verifier, challenge = pkce()
    launch = ehr.launch("p1", "e1")
    answer = redirected(authorize(ehr, challenge, launch=launch))
    assert answer["state"] == "st-1" and answer["code"]
    response = exchange(ehr, answer["code"], verifier)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    tokens = response.json()
    assert (tokens["token_type"], tokens["expires_in"], tokens["patient"],
            tokens["encounter"], tokens["need_patient_banner"]) == \
        ("Bearer", 300, "p1", "e1", True)
    assert tokens["scope"] == "launch openid fhirUser patient/*.rs offline_access"
    assert tokens["refresh_token"]
    access = claims_of(ehr, tokens["access_token"])
    assert (access["iss"], access["aud"], access["sub"], access["patient"]) == \
        (ehr.auth_base, ehr.fhir_base, APP, "p1")
    assert access["exp"] - access["iat"] == 300 and access["jti"]
    identity = claims_of(ehr, tokens["id_token"])
    assert (identity["aud"], identity["fhirUser"], identity["iss"]) == \
        (APP, "Practitioner/dr-lee", ehr.auth_base)
    state = ehr.auth_state()
    assert state["issued"] == [{"grant_type": "authorization_code", "client_id": APP,
                                "scope": tokens["scope"], "patient": "p1",
                                "encounter": "e1"}]
    assert state["authorize_requests"][0]["launch"] == launch


def test_a_standalone_launch_gets_the_configured_patient(ehr: TestEhr) -> None:
    verifier, challenge = pkce()
    code = code_for(ehr, challenge, scope="launch/patient patient/Observation.rs")
    tokens = exchange(ehr, code, verifier).json()
    assert tokens["patient"] == "p1" and "encounter" not in tokens
    assert "refresh_token" not in tokens and "id_token" not in tokens


@pytest.mark.parametrize(("overrides", "error"), [
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"code_challenge": None}, "invalid_request"),
    ({"aud": "https://other-ehr.example.org/fhir"}, "invalid_request"),
    ({"aud": None}, "invalid_request"),
    ({"launch": "not-a-launch"}, "invalid_request"),
    ({"scope": "patient/*.rs"}, "invalid_scope"),
    ({"response_type": "token"}, "unsupported_response_type"),
])
def test_a_wrong_authorize_request_is_sent_back_with_an_error(ehr, overrides, error):
    _, challenge = pkce()
    overrides = {"launch": ehr.launch("p1"), **overrides}
    answer = redirected(authorize(ehr, challenge, **overrides))
    assert answer["error"] == error and answer["error_description"]
    assert answer["state"] == "st-1" and "code" not in answer
    assert last_rejection(ehr)["endpoint"] == "/authorize"


def test_a_missing_state_is_refused_and_a_denial_says_so(ehr: TestEhr) -> None:
    _, challenge = pkce()
    assert redirected(authorize(ehr, challenge, state=None, launch=ehr.launch("p1"))) \
        ["error"] == "invalid_request"
    ehr.configure(deny=True)
    assert redirected(authorize(ehr, challenge, launch=ehr.launch("p1")))["error"] == \
        "access_denied"


@pytest.mark.parametrize("overrides", [
    {"redirect_uri": "https://attacker.example.org/callback"},
    {"redirect_uri": None},
    {"client_id": "someone-else"},
])
def test_an_unknown_client_or_redirect_uri_gets_a_page_not_a_redirect(ehr, overrides):
    _, challenge = pkce()
    response = authorize(ehr, challenge, launch=ehr.launch("p1"), **overrides)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/plain")


def test_a_wrong_verifier_is_refused(ehr: TestEhr) -> None:
    verifier, challenge = pkce()
    code = code_for(ehr, challenge, launch=ehr.launch("p1"))
    response = exchange(ehr, code, verifier[:-1] + ("A" if verifier[-1] != "A" else "B"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert last_rejection(ehr) == {"endpoint": "/token", "error": "invalid_grant",
                                   "description": "code_verifier does not match the "
                                                  "code_challenge"}


def test_a_plain_verifier_equal_to_the_challenge_is_refused(ehr: TestEhr) -> None:
    verifier, challenge = pkce()
    code = code_for(ehr, challenge, launch=ehr.launch("p1"))
    assert exchange(ehr, code, challenge).json()["error"] == "invalid_grant"


def test_a_code_works_once(ehr: TestEhr) -> None:
    verifier, challenge = pkce()
    code = code_for(ehr, challenge, launch=ehr.launch("p1"))
    assert exchange(ehr, code, verifier).status_code == 200
    again = exchange(ehr, code, verifier)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    assert len(ehr.auth_state()["issued"]) == 1


@pytest.mark.parametrize("form", [{"redirect_uri": REDIRECT + "/other"},
                                  {"client_id": "another-app"}])
def test_the_code_belongs_to_its_redirect_uri_and_client(ehr, form) -> None:
    ehr.register_client("another-app", [REDIRECT])
    verifier, challenge = pkce()
    code = code_for(ehr, challenge, launch=ehr.launch("p1"))
    fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
              "client_id": APP, "code_verifier": verifier, **form}
    response = token(ehr, **fields)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")


def test_the_token_endpoint_wants_a_form(ehr: TestEhr) -> None:
    response = requests.post(f"{ehr.auth_base}/token", json={"grant_type": "refresh_token"},
                             timeout=10)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_refresh_tokens_rotate(ehr: TestEhr) -> None:
    first = launched(ehr, "launch patient/*.rs offline_access")
    response = token(ehr, grant_type="refresh_token", refresh_token=first["refresh_token"],
                     client_id=APP)
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (second["patient"], second["encounter"]) == ("p1", "e1")
    assert claims_of(ehr, second["access_token"])["patient"] == "p1"
    reused = token(ehr, grant_type="refresh_token", refresh_token=first["refresh_token"],
                   client_id=APP)
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    assert token(ehr, grant_type="refresh_token", refresh_token=second["refresh_token"],
                 client_id=APP).status_code == 200
    assert ehr.auth_state()["refreshed"] == 2


def test_a_confidential_client_must_assert_its_identity(ehr, backend) -> None:
    ehr.register_client("confidential-app", [REDIRECT], jwks=backend.jwks())
    verifier, challenge = pkce()
    code = code_for(ehr, challenge, client_id="confidential-app", launch=ehr.launch("p1"))
    bare = token(ehr, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                 client_id="confidential-app", code_verifier=verifier)
    assert (bare.status_code, bare.json()["error"]) == (401, "invalid_client")
    signed = token(ehr, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                   client_id="confidential-app", code_verifier=verifier,
                   client_assertion_type=ASSERTION_TYPE,
                   client_assertion=backend.assertion(f"{ehr.auth_base}/token",
                                                      client_id="confidential-app"))
    assert signed.status_code == 200, signed.text


# -- SMART Backend Services -----------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_client_credentials_with_a_good_assertion_get_a_system_token(ehr, backend, alg):
    response = token(ehr, grant_type="client_credentials", scope="system/Observation.cs",
                     client_assertion_type=ASSERTION_TYPE,
                     client_assertion=backend.assertion(f"{ehr.auth_base}/token", alg=alg))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["token_type"], answer["expires_in"], answer["scope"]) == \
        ("Bearer", 300, "system/Observation.cs")
    assert "refresh_token" not in answer and "patient" not in answer
    claims = claims_of(ehr, answer["access_token"])
    assert (claims["sub"], claims["aud"]) == (BACKEND, ehr.fhir_base)
    assert "patient" not in claims
    assert ehr.auth_state()["issued"][-1]["grant_type"] == "client_credentials"


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"alg": "RS256"}, "alg"),
    ({"alg": "ES256", "header": {"kid": "ec-1"}}, "alg"),
    ({"lifetime": 600}, "assertion lifetime exceeds 5 minutes"),
    ({"lifetime": -60}, "expired"),
    ({"aud": "https://ehr.example.org/token"}, "aud"),
    ({"header": {"kid": "unknown"}}, "kid"),
    ({"header": {"typ": "at+jwt"}}, "typ"),
    ({"iss": "someone-else"}, "iss"),
])
def test_client_credentials_refuse_a_bad_assertion(ehr, backend, kwargs, words) -> None:
    if kwargs.get("alg") == "ES256":  # an ES256 key for the ES384-only server
        key = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
        now = int(time.time())
        assertion = jwt.encode({"alg": "ES256", "typ": "JWT", "kid": "ec-1"},
                               {"iss": BACKEND, "sub": BACKEND, "exp": now + 60,
                                "aud": f"{ehr.auth_base}/token", "jti": "x"}, key,
                               algorithms=["ES256"])
    else:
        assertion = backend.assertion(f"{ehr.auth_base}/token", **kwargs)
    response = token(ehr, grant_type="client_credentials", scope="system/Observation.cs",
                     client_assertion_type=ASSERTION_TYPE, client_assertion=assertion)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    assert words in response.json()["error_description"]
    assert response.headers["Cache-Control"] == "no-store"
    assert ehr.auth_state()["issued"] == []


def test_an_unsigned_or_foreign_assertion_is_refused(ehr, backend) -> None:
    url = f"{ehr.auth_base}/token"
    genuine = backend.assertion(url)
    head, body, _ = genuine.split(".")
    none_head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT","kid":"rsa-1"}')
    forged = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    foreign = jwt.encode({"alg": "RS384", "typ": "JWT", "kid": "rsa-1"},
                         {"iss": BACKEND, "sub": BACKEND, "aud": url,
                          "exp": int(time.time()) + 60, "jti": str(uuid.uuid4())},
                         forged, algorithms=["RS384"])
    for assertion in (f"{none_head.rstrip(b'=').decode()}.{body}.", f"{head}.{body}.",
                      foreign, "not-a-jwt"):
        response = token(ehr, grant_type="client_credentials", scope="system/*.rs",
                         client_assertion_type=ASSERTION_TYPE, client_assertion=assertion,
                         client_id=BACKEND)
        assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


def test_a_replayed_jti_is_refused(ehr: TestEhr, backend: Backend) -> None:
    assertion = backend.assertion(f"{ehr.auth_base}/token")
    form = {"grant_type": "client_credentials", "scope": "system/Observation.cs",
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    assert token(ehr, **form).status_code == 200
    replay = token(ehr, **form)
    assert (replay.status_code, replay.json()["error"]) == (401, "invalid_client")
    assert "jti" in replay.json()["error_description"]


def test_client_credentials_allow_system_scopes_only(ehr, backend) -> None:
    response = token(ehr, grant_type="client_credentials",
                     scope="system/Observation.cs patient/*.rs",
                     client_assertion_type=ASSERTION_TYPE,
                     client_assertion=backend.assertion(f"{ehr.auth_base}/token"))
    assert (response.status_code, response.json()["error"]) == (400, "invalid_scope")


def test_a_public_client_cannot_use_client_credentials(ehr, backend) -> None:
    response = token(ehr, grant_type="client_credentials", scope="system/*.rs",
                     client_id=APP)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


def test_backend_tokens_live_at_most_five_minutes(ehr, backend) -> None:
    ehr.configure(token_lifetime=3600)
    response = token(ehr, grant_type="client_credentials", scope="system/*.rs",
                     client_assertion_type=ASSERTION_TYPE,
                     client_assertion=backend.assertion(f"{ehr.auth_base}/token"))
    assert response.json()["expires_in"] == 300


# -- the FHIR server as a SMART resource server ---------------------------------------

def test_discovery_and_metadata_need_no_token(ehr: TestEhr) -> None:
    config = fhir(ehr, "GET", "/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == f"{ehr.auth_base}/token"
    assert config["authorization_endpoint"] == f"{ehr.auth_base}/authorize"
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert "permission-v2" in config["capabilities"]
    assert (config["issuer"], config["jwks_uri"]) == (ehr.auth_base, f"{ehr.auth_base}/jwks")
    statement = fhir(ehr, "GET", "/metadata").json()
    assert (statement["resourceType"], statement["fhirVersion"], statement["kind"]) == \
        ("CapabilityStatement", "4.0.1", "instance")
    rest = statement["rest"][0]
    assert rest["interaction"] == [{"code": "transaction"}]
    observation = next(r for r in rest["resource"] if r["type"] == "Observation")
    assert observation["conditionalCreate"] is True


def test_a_missing_or_foreign_token_is_401(ehr: TestEhr) -> None:
    missing = fhir(ehr, "GET", "/Patient/p1")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.json()["resourceType"] == "OperationOutcome"
    forged = RSAKey.generate_key(2048, parameters={"kid": "as-1"})
    now = int(time.time())
    foreign = jwt.encode({"alg": "RS384", "typ": "JWT", "kid": "as-1"},
                         {"iss": ehr.auth_base, "aud": ehr.fhir_base, "sub": "x",
                          "scope": "system/*.rs", "exp": now + 60, "iat": now},
                         forged, algorithms=["RS384"])
    for bad in (foreign, "not-a-jwt"):
        response = fhir(ehr, "GET", "/Patient/p1", bad)
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert [e["ok"] for e in ehr.state()["auth"]] == [False, False, False]
    assert "not-a-jwt" not in str(ehr.state())


def test_a_token_for_another_server_is_401(ehr: TestEhr, backend: Backend) -> None:
    ehr.configure(fhir_base="https://other-ehr.example.org/fhir")
    access = backend_token(ehr, backend, "system/*.rs")
    assert fhir(ehr, "GET", "/Patient/p1", access).status_code == 401


def test_a_token_without_the_scope_is_403(ehr: TestEhr, backend: Backend) -> None:
    access = backend_token(ehr, backend, "system/Observation.rs")
    response = fhir(ehr, "GET", "/Patient/p1", access)
    assert response.status_code == 403
    assert "'r' on Patient" in response.json()["issue"][0]["diagnostics"]
    assert fhir(ehr, "GET", "/Observation/o1", access).status_code == 200
    create = fhir(ehr, "POST", "/Observation", access, json=OBSERVATIONS[0])
    assert create.status_code == 403
    assert ehr.state()["posts"] == 0


def test_seeded_resources_are_read_and_searched_with_a_good_token(ehr, backend) -> None:
    access = backend_token(ehr, backend, "system/*.rs")
    response = fhir(ehr, "GET", "/Patient/p1", access)
    assert response.status_code == 200 and response.json() == PATIENT
    found = fhir(ehr, "GET", "/Patient?identifier=urn:mrn|123", access).json()
    assert (found["type"], found["total"], found["entry"][0]["resource"]["id"]) == \
        ("searchset", 1, "p1")
    by_code = fhir(ehr, "GET", "/Observation", access,
                   params={"patient": "p2", "code": "http://loinc.org|8867-4"}).json()
    assert [e["resource"]["id"] for e in by_code["entry"]] == ["o2"]
    assert "entry" not in fhir(ehr, "GET", "/Observation?subject=Patient/p9", access).json()
    assert fhir(ehr, "GET", "/Patient/nobody", access).status_code == 404
    assert fhir(ehr, "GET", "/Patient?name=Silva", access).status_code == 400
    assert ehr.state()["auth"][0] == {"method": "GET", "path": "/Patient/p1",
                                      "sub": BACKEND, "ok": True}


def test_a_patient_token_reaches_only_its_patient(ehr: TestEhr) -> None:
    access = launched(ehr)["access_token"]
    assert fhir(ehr, "GET", "/Patient/p1", access).status_code == 200
    assert fhir(ehr, "GET", "/Encounter/e1", access).status_code == 200
    assert fhir(ehr, "GET", "/Patient/p2", access).status_code == 403
    assert fhir(ehr, "GET", "/Observation/o2", access).status_code == 403
    mine = fhir(ehr, "GET", "/Observation", access).json()
    assert [e["resource"]["id"] for e in mine["entry"]] == ["o1"]
    assert fhir(ehr, "GET", "/Observation?patient=p2", access).status_code == 403


def test_a_transaction_needs_create_on_every_entry_type(ehr, backend) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {
            "resourceType": "Observation", "status": "final", "code": {"text": "SLR"},
            "identifier": [{"system": "urn:x", "value": "1"}]},
         "request": {"method": "POST", "url": "Observation",
                     "ifNoneExist": "identifier=urn:x|1"}},
        {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Provenance"},
         "request": {"method": "POST", "url": "Provenance"}}]}
    narrow = backend_token(ehr, backend, "system/Observation.c")
    refused = fhir(ehr, "POST", "/", narrow, json=bundle)
    assert refused.status_code == 403
    assert "Provenance" in refused.json()["issue"][0]["diagnostics"]
    assert ehr.state()["posts"] == 0
    access = backend_token(ehr, backend, "system/Observation.c system/Provenance.c")
    response = fhir(ehr, "POST", "/", access, json=bundle)
    assert response.status_code == 200, response.text
    assert [e["response"]["status"] for e in response.json()["entry"]] == \
        ["201 Created", "201 Created"]
    v1 = backend_token(ehr, backend, "system/*.write")
    assert fhir(ehr, "POST", "/", v1, json=bundle).json()["entry"][0]["response"] \
        ["status"] == "200 OK"


def test_a_single_conditional_create(ehr: TestEhr, backend: Backend) -> None:
    access = backend_token(ehr, backend, "system/Observation.c")
    observation = {**OBSERVATIONS[0], "identifier": [{"system": "urn:x", "value": "7"}]}
    del observation["id"]
    headers = {"If-None-Exist": "identifier=urn:x|7"}
    first = fhir(ehr, "POST", "/Observation", access, json=observation, headers=headers)
    assert first.status_code == 201, first.text
    assert first.headers["Location"].startswith(f"{ehr.fhir_base}/Observation/")
    second = fhir(ehr, "POST", "/Observation", access, json=observation,
                  headers=dict(headers))
    assert (second.status_code, second.json()["id"]) == (200, first.json()["id"])
    ehr.faults([{"status": 503}])
    assert fhir(ehr, "POST", "/Observation", access, json=observation).status_code == 503
    assert ehr.state()["posts"] == 3
    assert fhir(ehr, "POST", "/Patient", backend_token(ehr, backend, "system/Patient.c"),
                json=observation).status_code == 400  # body is not a Patient


def test_a_capability_statement_without_transactions_is_enforced(ehr, backend) -> None:
    ehr.capability({"resourceType": "CapabilityStatement", "status": "active",
                    "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"],
                    "rest": [{"mode": "server", "resource": [
                        {"type": "DocumentReference", "interaction": [{"code": "create"}]}]}]})
    assert "interaction" not in fhir(ehr, "GET", "/metadata").json()["rest"][0]
    access = backend_token(ehr, backend, "system/*.c")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    assert fhir(ehr, "POST", "/", access, json=bundle).status_code == 405
    assert fhir(ehr, "POST", "/Observation", access,
                json=OBSERVATIONS[0]).status_code == 405
    assert fhir(ehr, "POST", "/DocumentReference", access,
                json={"resourceType": "DocumentReference"}).status_code == 201
    ehr.reset()
    assert fhir(ehr, "GET", "/metadata").json()["rest"][0]["interaction"] == \
        [{"code": "transaction"}]


def test_unknown_paths_and_bad_bodies_are_operation_outcomes(ehr, backend) -> None:
    access = backend_token(ehr, backend, "system/*.cruds")
    for method, path, body in (("GET", "/nothing/here/at/all", None),
                               ("POST", "/Patient/p1", {}),
                               ("GET", "/patient/p1", None)):
        response = fhir(ehr, method, path, access, json=body)
        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"
    broken = fhir(ehr, "POST", "/", access, data=b"{not json",
                  headers={"Content-Type": "application/fhir+json"})
    assert broken.status_code == 400


def test_without_auth_the_fhir_server_asks_for_no_token(tmp_path) -> None:
    server = module_server.start("fhir_server", str(tmp_path / "fhir.json"),
                                 log=tmp_path / "fhir.log")
    try:
        requests.post(f"{server.url}/_seed", json={"resources": [PATIENT]}, timeout=10)
        assert requests.get(f"{server.url}/Patient/p1", timeout=10).json() == PATIENT
        assert requests.get(f"{server.url}/.well-known/smart-configuration",
                            timeout=10).status_code == 404
        assert "security" not in requests.get(f"{server.url}/metadata",
                                              timeout=10).json()["rest"][0]
    finally:
        server.stop()


# -- strictness: what production servers refuse (``/_strict``) ------------------------

def _observation(n: int, subject: str = "Patient/p1") -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n:012d}",
            "resource": {"resourceType": "Observation", "status": "final",
                         "code": {"text": "SLR"}, "subject": {"reference": subject},
                         "identifier": [{"system": "urn:x", "value": str(n)}]},
            "request": {"method": "POST", "url": "Observation",
                        "ifNoneExist": f"identifier=urn:x|{n}"}}


def _transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def _refusal(response: requests.Response) -> tuple[int, str, str]:
    issue = response.json()["issue"][0]
    return response.status_code, issue["code"], issue["diagnostics"]


def test_a_conditional_transaction_over_the_entry_limit_is_refused_as_medplum_does(
        ehr, backend) -> None:
    ehr.strict(max_entries=8)
    access = backend_token(ehr, backend, "system/*.cs")
    refused = fhir(ehr, "POST", "/", access, json=_transaction(*map(_observation, range(9))))
    assert _refusal(refused) == (400, "invalid", "Transaction requires strict isolation but "
                                                 "has too many entries")
    assert len(ehr.state()["resources"]) == 5  # the seeds: nothing of it was kept
    assert fhir(ehr, "POST", "/", access,
                json=_transaction(*map(_observation, range(8)))).status_code == 200
    # the limit is on conditional transactions only
    plain = [{**e, "request": {"method": "POST", "url": "Observation"}}
             for e in map(_observation, range(20, 29))]
    assert fhir(ehr, "POST", "/", access, json=_transaction(*plain)).status_code == 200


@pytest.mark.parametrize("query", [
    "entity:QuestionnaireResponse.identifier=urn:x|1",  # a chain
    "identifier:text=1",  # a modifier
    "_tag=urn:t|1",  # declared on the server by default, but not in this statement
    "status=final",  # not declared for the type
])
def test_undeclared_chained_and_modified_parameters_are_refused(ehr, backend, query) -> None:
    ehr.strict(declared_only=True)
    statement = fhir(ehr, "GET", "/metadata").json()
    statement["rest"][0].pop("searchParam")  # no _tag for every type
    ehr.capability(statement)
    access = backend_token(ehr, backend, "system/*.cs")
    entry = {**_observation(1), "request": {"method": "POST", "url": "Observation",
                                            "ifNoneExist": query}}
    refused = fhir(ehr, "POST", "/", access, json=_transaction(entry))
    assert refused.status_code == 400 and _refusal(refused)[1] == "not-supported"
    single = fhir(ehr, "POST", "/Observation", access, json=entry["resource"],
                  headers={"If-None-Exist": query})
    assert single.status_code == 400 and "unsupported search parameter" in \
        _refusal(single)[2]
    assert fhir(ehr, "GET", f"/Observation?{query}", access).status_code == 400
    assert ehr.state()["posts"] == 2 and len(ehr.state()["resources"]) == 5
    # what the statement declares is served
    assert fhir(ehr, "GET", "/Observation?identifier=urn:x|1&patient=p1",
                access).status_code == 200


def test_a_provenance_is_matched_by_its_tag_entity_or_target_when_strict(ehr, backend):
    ehr.strict(declared_only=True)
    access = backend_token(ehr, backend, "system/*.cs")
    provenance = {"resourceType": "Provenance", "recorded": "2026-12-06T10:00:00Z",
                  "meta": {"tag": [{"system": "urn:t", "code": "exam-1"}]},
                  "target": [{"reference": "Observation/o1"}],
                  "entity": [{"role": "source", "what": {"reference": "Patient/p1"}}],
                  "agent": [{"who": {"display": "plugin"}}]}
    for query in ("_tag=urn:t|exam-1", "target=Observation/o1", "entity=Patient/p1"):
        answer = fhir(ehr, "POST", "/Provenance", access, json=provenance,
                      headers={"If-None-Exist": query})
        assert answer.status_code in (200, 201), answer.text
    assert sum(r["resourceType"] == "Provenance" for r in ehr.state()["resources"]) == 1
    assert fhir(ehr, "GET", "/Provenance?_tag=urn:t|other", access).json()["total"] == 0


def test_types_refused_in_transactions_are_refused_there_only(ehr, backend) -> None:
    ehr.strict(no_transaction_types=["Provenance"])
    access = backend_token(ehr, backend, "system/*.cs")
    provenance = {"resourceType": "Provenance", "recorded": "2026-12-06T10:00:00Z",
                  "target": [{"reference": "Observation/o1"}],
                  "agent": [{"who": {"display": "plugin"}}]}
    refused = fhir(ehr, "POST", "/", access, json=_transaction(
        _observation(1), {"fullUrl": "urn:uuid:p", "resource": provenance,
                          "request": {"method": "POST", "url": "Provenance"}}))
    assert _refusal(refused)[:2] == (400, "not-supported")
    assert "Provenance" in _refusal(refused)[2]
    assert fhir(ehr, "POST", "/", access, json=_transaction(_observation(1))).ok
    assert fhir(ehr, "POST", "/Provenance", access, json=provenance).status_code == 201


@pytest.mark.parametrize(("subject", "code"), [
    ({"identifier": {"system": "urn:mrn", "value": "123"}}, "required"),
    ({"reference": "Patient/not-here"}, "invalid"),
    ({"display": "Ana Silva"}, "required"),
])
def test_literal_patient_references_are_required(ehr, backend, subject, code) -> None:
    ehr.strict(literal_references=True)
    access = backend_token(ehr, backend, "system/*.cs")
    entry = _observation(1)
    entry["resource"]["subject"] = subject
    assert _refusal(fhir(ehr, "POST", "/", access, json=_transaction(entry)))[:2] == \
        (400, code)
    assert _refusal(fhir(ehr, "POST", "/Observation", access,
                         json=entry["resource"]))[:2] == (400, code)
    # a reference into the same transaction resolves; one to nothing does not
    good = _observation(2)
    derived = {**_observation(3), "resource": {**_observation(3)["resource"], "derivedFrom": [
        {"reference": good["fullUrl"]}]}}
    assert fhir(ehr, "POST", "/", access, json=_transaction(good, derived)).ok
    dangling = {**_observation(4), "resource": {**_observation(4)["resource"], "derivedFrom": [
        {"reference": "urn:uuid:00000000-0000-4000-8000-999999999999"}]}}
    assert _refusal(fhir(ehr, "POST", "/", access, json=_transaction(dangling)))[:2] == \
        (400, "invalid")
    ehr.reset()  # strictness ends with the reset
    ehr.register_client(BACKEND, [], jwks=backend.jwks())
    assert fhir(ehr, "POST", "/", backend_token(ehr, backend, "system/*.cs"),
                json=_transaction(entry)).ok
