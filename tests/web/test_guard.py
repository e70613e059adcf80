"""One guard decides who reaches what: every rule of the app is either open (on the
guard's list) or needs a signed-in user, with the role its view declares."""
from __future__ import annotations

import re

import pytest

from plugin.web import auth
from tests.support import tablet
from tests.support.signin import PASSWORD, log_in, signed_in, user

#: What the issue allows without a user; the test fails if the guard opens anything else.
EXPECTED_OPEN = {
    "/login", "/logout", "/setup", "/health", "/launch", "/launch/callback",
    "/static/<path:filename>", "/static/exam/<path:filename>", "/fhir/metadata",
    "/fhir/Questionnaire", "/fhir/Questionnaire/<fhir_id:id_>", "/fhir/CodeSystem",
    "/fhir/CodeSystem/<id_>", "/fhir/StructureDefinition",
    "/fhir/StructureDefinition/<fhir_id:id_>", "/cds-services", "/cds-services/<service_id>",
    "/cds-services/<service_id>/feedback", "/auth/token", "/fhir/.well-known/smart-configuration",
    "/sso/<name>", "/sso/callback",
}
CLINICIAN_ONLY = {"exam.sign", "exam.amend", "exam.cancel_amendment", "exam.deliver_again",
                  "exam.delivery_patient", "sso.step_up", "exam.save_impression",
                  "exam.begin_follow_up", "proms.add", "proms.remove", "proms.hand"}


def _url(rule) -> str:  # type: ignore[no-untyped-def]
    return re.sub(r"<[^>]+>", "x", re.sub(r"<int:[^>]+>", "1", rule.rule))


def test_every_rule_is_open_on_purpose_or_guarded(make_app) -> None:
    """Walks url_map: an open rule must be on the expected list; every other rule
    refuses an anonymous request (redirect to sign-in, or 401 on the API). CSRF is off,
    so the guard itself must answer."""
    app = make_app({"WTF_CSRF_ENABLED": False})
    anonymous = app.test_client()
    opened, unguarded = set(), []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in auth.OPEN:
            opened.add(rule.rule)
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = anonymous.open(_url(rule), method=method, json={})
            refused = (response.status_code in (302, 303)
                       and "/login" in response.headers.get("Location", "")) or \
                response.status_code == 401
            if not refused:
                unguarded.append((method, rule.rule, response.status_code))
    assert unguarded == []
    assert opened == EXPECTED_OPEN
    assert auth.OPEN <= set(app.view_functions)  # no stale names on the open list


#: What a token needs per FHIR API route (SMART v2), as the issue and README promise.
EXPECTED_SCOPES = {
    ("POST", "/fhir/QuestionnaireResponse/$extract"): "system/QuestionnaireResponse.c",
    ("POST", "/fhir/QuestionnaireResponse/$assess"): "system/QuestionnaireResponse.c",
    ("POST", "/fhir/Questionnaire/$populate"): "system/Patient.r",
    ("POST", "/fhir/Questionnaire/<fhir_id:id_>/$populate"): "system/Patient.r",
    ("GET", "/fhir/Patient/<id_>"): "system/Patient.r",
    ("GET", "/fhir/Practitioner/<id_>"): "system/Practitioner.r",
    ("GET", "/fhir/QuestionnaireResponse/<fhir_id:id_>"): "system/QuestionnaireResponse.r",
    ("GET", "/fhir/QuestionnaireResponse/<fhir_id:id_>/_history"):
        "system/QuestionnaireResponse.r",
    ("GET", "/fhir/QuestionnaireResponse/<fhir_id:id_>/_history/<vid>"):
        "system/QuestionnaireResponse.r",
    ("GET", "/fhir/QuestionnaireResponse"): "system/QuestionnaireResponse.s",
    ("GET", "/fhir/Observation"): "system/Observation.s",
    ("GET", "/fhir/Observation/<fhir_id:id_>"): "system/Observation.r",
    ("GET", "/fhir/Observation/<fhir_id:id_>/_history/<vid>"): "system/Observation.r",
    ("GET", "/fhir/AuditEvent"): "system/AuditEvent.s",
    ("GET", "/fhir/AuditEvent/<fhir_id:id_>"): "system/AuditEvent.r",
}


def test_every_api_route_declares_its_scope(app) -> None:
    """Walks url_map: every /fhir route that is not open declares the scope a token
    needs (an undeclared one fails here; the guard would refuse it to every token)."""
    declared, undeclared = {}, []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/fhir") or rule.endpoint in auth.OPEN:
            continue
        need = getattr(app.view_functions[rule.endpoint], "required_scope", None)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if need is None:
                undeclared.append((method, rule.rule))
            else:
                declared[(method, rule.rule)] = str(need)
    assert undeclared == []
    assert declared == EXPECTED_SCOPES


def test_a_token_never_reaches_a_route_without_a_declared_scope(make_app) -> None:
    from flask import Blueprint

    app = make_app()
    extra = Blueprint("extra", __name__)
    extra.add_url_rule("/fhir/Undeclared", "undeclared", lambda: "served")
    app.register_blueprint(extra)
    from tests.support.api_client import bearer, register, token
    response = app.test_client().get("/fhir/Undeclared",
                                     headers=bearer(token(app, register(app))))
    assert response.status_code == 403 and "not open to access tokens" in \
        response.get_data(as_text=True)


def test_roles_are_declared_beside_the_routes(app) -> None:
    declared = {endpoint for endpoint, view in app.view_functions.items()
                if getattr(view, "required_role", None) == "clinician"}
    assert declared == CLINICIAN_ONLY


def test_pages_redirect_to_sign_in_and_come_back(app) -> None:
    anonymous = app.test_client()
    response = anonymous.get("/patients?q=silva")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/patients?q%3Dsilva"
    user(app)
    back = log_in(anonymous, "test-clinician", next_="/patients?q=silva")
    assert back.status_code == 303 and back.headers["Location"] == "/patients?q=silva"
    assert anonymous.get("/patients").status_code == 200


def test_sign_in_never_redirects_off_site(app) -> None:
    user(app)
    for target in ("//evil.example/x", "https://evil.example/", "\\\\evil.example"):
        response = log_in(app.test_client(), "test-clinician", next_=target)
        assert response.headers["Location"] == "/patients"


def test_the_api_answers_401_with_an_operation_outcome(app) -> None:
    response = app.test_client().get("/fhir/QuestionnaireResponse?patient=p1")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "login"


def test_an_autosave_without_a_session_gets_json_the_tablet_understands(app) -> None:
    anonymous = app.test_client()  # the page's CSRF token is still good: only the session ended
    token = re.search(r'name="csrf-token" content="([^"]+)"',
                      anonymous.get("/login").get_data(as_text=True)).group(1)
    response = anonymous.put("/exams/x/draft", json={"section": "slr", "answers": {}},
                             headers={"If-Match": '"1"', "X-CSRFToken": token})
    assert response.status_code == 401
    assert response.get_json()["error"] == "signed-out"
    assert response.get_json()["login"] == "/login"


def test_open_routes_need_no_user(app) -> None:
    anonymous = app.test_client()
    for path in ("/fhir/metadata", "/fhir/Questionnaire", "/fhir/CodeSystem", "/cds-services",
                 "/health", "/login", "/static/exam/exam.css"):
        response = anonymous.get(path)
        assert response.status_code == 200, path
        response.close()  # static files are streamed from an open file
    assert anonymous.get("/health").get_json() == {"status": "ok"}


def test_a_signed_in_session_may_read_the_api(app, kb) -> None:
    ana = tablet.patient(app)
    response = signed_in(app, "assistant").get(f"/fhir/Patient/{ana.id}")
    assert response.status_code == 200 and response.get_json()["resourceType"] == "Patient"


# --- roles -----------------------------------------------------------------------------

@pytest.fixture()
def signed_exam(make_app, kb, form):
    app = make_app({"WTF_CSRF_ENABLED": False})
    ana = tablet.patient(app)
    exam = tablet.sign(app, kb, tablet.draft(app, form, ana), ana, tablet.MARCH)
    return app, exam


def test_an_assistant_enters_findings_but_cannot_sign_or_amend(make_app, form) -> None:
    app = make_app({"WTF_CSRF_ENABLED": False})
    ana = tablet.patient(app)
    assistant = signed_in(app, "assistant")
    start = assistant.post(f"/patients/{ana.id}/exams")
    assert start.status_code == 303
    exam_id = start.headers["Location"].split("/")[2]
    saved = assistant.put(f"/exams/{exam_id}/draft", headers={"If-Match": '"1"'},
                          json={"section": "slr", "answers": {"slr.left.onset-angle": 40}})
    assert saved.status_code == 200
    review = assistant.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert 'id="sign-form"' not in review and "Only a clinician can sign" in review
    refused = assistant.post(f"/exams/{exam_id}/sign",
                             data={"version": saved.get_json()["version"], "password": PASSWORD})
    assert refused.status_code == 403
    assert "needs the clinician role" in refused.get_data(as_text=True)
    from plugin.adapters import store
    assert store.from_app(app).exam(exam_id).state == "draft"


def test_an_assistant_sees_no_amend_button_and_is_refused_amending(signed_exam) -> None:
    app, exam = signed_exam
    assistant = signed_in(app, "assistant")
    record = assistant.get(f"/exams/{exam.id}/record").get_data(as_text=True)
    assert 'id="amend-form"' not in record
    for path in ("amend", "amend/cancel", "delivery/again", "delivery/patient"):
        response = assistant.post(f"/exams/{exam.id}/{path}",
                                  data={"version": exam.version, "reason": "x"})
        assert response.status_code == 403, path
    clinician = signed_in(app)
    assert 'id="amend-form"' in clinician.get(f"/exams/{exam.id}/record").get_data(as_text=True)
    assert clinician.post(f"/exams/{exam.id}/amend",
                          data={"version": exam.version, "reason": "x"}).status_code == 303


def test_an_admin_signs_only_when_also_a_clinician(make_app, form) -> None:
    app = make_app({"WTF_CSRF_ENABLED": False})
    ana = tablet.patient(app)
    exam = tablet.draft(app, form, ana)
    admin = signed_in(app, "admin")
    assert admin.post(f"/exams/{exam.id}/sign", data={"version": exam.version,
                                                        "password": PASSWORD}).status_code == 403
    both = signed_in(app, "admin", also_clinician=True)
    signed = both.post(f"/exams/{exam.id}/sign", data={"version": exam.version,
                                                         "password": PASSWORD})
    assert signed.status_code == 303


def test_the_signer_is_the_signed_in_practitioner(make_app, form) -> None:
    app = make_app({"WTF_CSRF_ENABLED": False})
    ana = tablet.patient(app)
    exam = tablet.draft(app, form, ana)
    client = signed_in(app)
    clinician = user(app)
    assert client.post(f"/exams/{exam.id}/sign", data={
        "version": exam.version, "password": PASSWORD, "signer": "Dr Somebody Else"}
    ).status_code == 303
    qr = client.get(f"/fhir/QuestionnaireResponse/{exam.id}").get_json()
    author = {"reference": f"Practitioner/{clinician.id}", "type": "Practitioner",
              "display": "Dr Ann Lee"}
    assert qr["author"] == author
    from plugin.adapters import store
    provenance = store.from_app(app).revision(exam.id, 1).provenance
    assert provenance["agent"][0]["who"] == author


def test_wrong_signing_passwords_count_towards_the_lock(make_app, form) -> None:
    """Re-authentication is authentication: five wrong passwords at the sign button
    lock the account and end its session, like five failed sign-ins."""
    app = make_app({"WTF_CSRF_ENABLED": False})
    ana = tablet.patient(app)
    exam = tablet.draft(app, form, ana)
    client = signed_in(app)
    for _ in range(5):
        refused = client.post(f"/exams/{exam.id}/sign",
                              data={"version": exam.version, "password": "a wrong guess here"})
        assert refused.status_code in (422, 302)
    assert client.get("/patients").status_code == 302  # signed out by the lock
    from plugin.adapters import store, users
    assert users.by_username(store.from_app(app), "test-clinician").locked_until is not None
    assert store.from_app(app).exam(exam.id).state == "draft"
