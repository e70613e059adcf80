"""Patient mode, enforced by the one guard: a session handed to the patient reaches only
its PROM's screens, saves, static files and the return page; everything else is refused
(and audited) until the clinician's own password is entered again."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from plugin.adapters import store as store_mod, users
from plugin.adapters.tables import audit_events
from plugin.web import auth
from tests.support.signin import PASSWORD, signed_in

from .test_prom_pages import add, all_lefs, begin_exam, put


@pytest.fixture()
def app(make_app):
    return make_app({"WTF_CSRF_ENABLED": False})


@pytest.fixture()
def handed(app):
    """A clinician's client in patient mode for a LEFS of a new exam."""
    client = signed_in(app)
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id)
    response = client.post(f"/exams/{exam_id}/proms/{prom_id}/hand")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/exams/{exam_id}/proms/{prom_id}/patient/1"
    return client, exam_id, prom_id


def _url(rule) -> str:  # type: ignore[no-untyped-def]
    return re.sub(r"<[^>]+>", "x", re.sub(r"<int:[^>]+>", "1", rule.rule))


def test_every_other_route_is_refused_in_patient_mode(app, handed) -> None:
    client, exam_id, prom_id = handed
    # static files, and the load balancer's probe (it reads no session, serves only "ok")
    # and the sign-in service's way back, which only the return out of patient mode may
    # use (a sign-in or signature started before is refused: tests/web/test_patient_mode_sso)
    allowed, reached = {"static", "exam.static", "signin.health", "sso.callback"}, []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in allowed:
            continue
        url = _url(rule)
        if rule.endpoint in auth.PATIENT_MODE:  # its pages, but another PROM's
            url = url.replace("/x", f"/{exam_id}", 1) if "exams" in url else url
        response = client.get(url)
        if response.status_code != 403:
            reached.append((rule.rule, response.status_code))
    assert reached == []
    assert client.get("/sso/callback?state=forged&code=x").status_code == 400
    # a script's write elsewhere gets JSON; the FHIR API an OperationOutcome
    draft = client.put(f"/exams/{exam_id}/draft", json={}, headers={"If-Match": '"1"'})
    assert draft.status_code == 403 and draft.get_json()["error"] == "patient-mode"
    fhir = client.get("/fhir/Observation?patient=x")
    assert fhir.status_code == 403 and fhir.get_json()["resourceType"] == "OperationOutcome"
    # and every refusal is in the audit trail, as a failure, naming the clinician's session
    with store_mod.from_app(app).engine.connect() as conn:
        refused = conn.execute(select(audit_events.c.outcome, audit_events.c.agent).where(
            audit_events.c.resource == f"QuestionnaireResponse/{prom_id}",
            audit_events.c.outcome == "4")).all()
    assert len(refused) >= 10 and {r.agent for r in refused} == {"test-clinician"}


def test_the_patient_sees_one_question_per_screen_and_nothing_else(handed) -> None:
    client, exam_id, prom_id = handed
    page = client.get(f"/exams/{exam_id}/proms/{prom_id}/patient/3").get_data(as_text=True)
    assert "Question 3 of 20" in page and page.count('type="radio"') == 5
    assert "Silva" not in page and "/patients" not in page and "Sign out" not in page
    assert "Phys Ther 1999" in page  # the copyright notice stays on screen
    assert f"/proms/{prom_id}/return" in page


def test_the_patient_completes_it_and_the_clinician_returns_with_the_password(
        app, handed) -> None:
    client, exam_id, prom_id = handed
    base = f"/exams/{exam_id}/proms/{prom_id}/patient"
    version = 1
    for n in range(1, 21):
        go = "finish" if n == 20 else "next"
        response = client.post(f"{base}/{n}", data={"version": version,
                                                    f"lefs-item-{n}": "lefs-4", "go": go})
        assert response.status_code == 303, response.get_data(as_text=True)
        version += 1
    assert response.headers["Location"] == f"{base}/done"
    thanks = client.get(f"{base}/done").get_data(as_text=True)
    assert "please hand the tablet back" in thanks.lower()
    assert client.get(f"/exams/{exam_id}/review").status_code == 403

    wrong = client.post(f"/proms/{prom_id}/return", data={"password": "not it"})
    assert wrong.status_code == 422 and "not right" in wrong.get_data(as_text=True)
    assert client.get(f"/exams/{exam_id}/review").status_code == 403  # still patient mode
    store = store_mod.from_app(app)
    with store.engine.connect() as conn:  # counted towards the lock-out
        from plugin.adapters.tables import users as users_table
        assert conn.execute(select(users_table.c.failed_attempts).where(
            users_table.c.username == "test-clinician")).scalar_one() == 1

    back = client.post(f"/proms/{prom_id}/return", data={"password": PASSWORD})
    assert back.status_code == 303
    assert back.headers["Location"] == f"/exams/{exam_id}/proms/{prom_id}"
    page = client.get(back.headers["Location"]).get_data(as_text=True)
    assert "Finished" in page and "<dd>80</dd>" in page
    assert client.get(f"/exams/{exam_id}/review").status_code == 200


def test_patient_mode_survives_a_new_tab(app, handed) -> None:
    client, exam_id, prom_id = handed
    with client.session_transaction() as cookie:
        token = cookie[auth.SESSION_KEY]
    tab = app.test_client()
    with tab.session_transaction() as cookie:
        cookie[auth.SESSION_KEY] = token
    assert tab.get("/patients").status_code == 403
    assert tab.get(f"/exams/{exam_id}/proms/{prom_id}/patient/1").status_code == 200


def test_another_prom_of_the_same_exam_is_refused(app) -> None:
    client = signed_in(app)
    exam_id = begin_exam(client)
    first, second = add(client, exam_id), add(client, exam_id, "psfs")
    client.post(f"/exams/{exam_id}/proms/{first}/hand")
    assert client.get(f"/exams/{exam_id}/proms/{second}/patient/1").status_code == 403
    assert put(client, exam_id, second, 1, {"psfs-activity-1": "x"}).status_code == 403
    assert put(client, exam_id, first, 1, all_lefs()).status_code == 200


def test_five_wrong_passwords_lock_the_account_and_end_the_session(app, handed) -> None:
    client, exam_id, prom_id = handed
    for _ in range(users.MAX_FAILURES):
        client.post(f"/proms/{prom_id}/return", data={"password": "guess"})
    response = client.get(f"/exams/{exam_id}/proms/{prom_id}/patient/1")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_removed_prom_leaves_the_tablet_in_patient_mode(app, handed) -> None:
    client, exam_id, prom_id = handed
    other = signed_in(app, client=app.test_client())
    assert other.post(f"/exams/{exam_id}/proms/{prom_id}/remove",
                      data={"version": 1}).status_code == 303
    assert client.get("/patients").status_code == 403
    assert client.get(f"/proms/{prom_id}/return").status_code == 200
    back = client.post(f"/proms/{prom_id}/return", data={"password": PASSWORD})
    assert back.status_code == 303 and back.headers["Location"] == "/patients"
