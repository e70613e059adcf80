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

from .test_prom_pages import add, all_lefs, all_start_back, begin_exam, put


@pytest.fixture()
def app(make_app):
    return make_app({"WTF_CSRF_ENABLED": False})


@pytest.fixture()
def handed(app):
    """A clinician's client in patient mode for a STarT Back of a new exam."""
    client = signed_in(app)
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id, "keele-start-back")
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
    assert "Question 3 of 9" in page and page.count('type="radio"') == 2
    # the published wording (LOINC's), under Keele's instruction, never a placeholder
    assert "I have only walked short distances because of my back pain" in page
    assert "Thinking about the last 2 weeks please answer the following questions" in page
    assert "STarT Back item" not in page
    assert "Silva" not in page and "/patients" not in page and "Sign out" not in page
    assert "© Keele University 2007" in page  # the copyright notice stays on screen
    assert f"/proms/{prom_id}/return" in page


def test_the_patient_completes_it_and_the_clinician_returns_with_the_password(
        app, handed) -> None:
    client, exam_id, prom_id = handed
    base = f"/exams/{exam_id}/proms/{prom_id}/patient"
    version = 1
    for link_id, code in all_start_back().items():
        n = int(link_id.rsplit("-", 1)[1])
        go = "finish" if n == 9 else "next"
        response = client.post(f"{base}/{n}", data={"version": version, link_id: code,
                                                    "go": go})
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
    assert "Finished" in page and "<dd>9</dd>" in page and "<dd>High</dd>" in page
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
    first, second = add(client, exam_id, "keele-start-back"), add(client, exam_id, "psfs")
    client.post(f"/exams/{exam_id}/proms/{first}/hand")
    assert client.get(f"/exams/{exam_id}/proms/{second}/patient/1").status_code == 403
    assert put(client, exam_id, second, 1, {"psfs-activity-1": "x"}).status_code == 403
    assert put(client, exam_id, first, 1, all_start_back()).status_code == 200


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


def test_an_instrument_without_its_wording_is_never_handed_to_the_patient(app) -> None:
    """LEFS ships with numbered placeholders (its Questionnaire says so in the
    item-wording-not-included extension): the tablet offers the reason instead of the
    button, a POST anyway is refused with the same words, and the clinician still fills
    it in (from the owner's paper form, with the patient)."""
    client = signed_in(app)
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id)  # LEFS
    reason = ("Lower Extremity Functional Scale (LEFS) cannot be handed to the patient: its "
              "questions here carry numbers, not the owner&#39;s published wording. Fill it in "
              "with the patient from the owner&#39;s paper form (The owner&#39;s published "
              "form: Binkley JM, Stratford PW, Lott SA, Riddle DL. Phys Ther 1999;79(4):"
              "371-383, appendix (the 20 activities and the rating scale)).")
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert reason in review and f"/proms/{prom_id}/hand" not in review
    page = client.get(f"/exams/{exam_id}/proms/{prom_id}").get_data(as_text=True)
    assert reason in page and f"/proms/{prom_id}/hand" not in page

    refused = client.post(f"/exams/{exam_id}/proms/{prom_id}/hand")
    assert refused.status_code == 409 and reason in refused.get_data(as_text=True)
    assert client.get("/patients").status_code == 200  # not in patient mode
    assert client.get(f"/exams/{exam_id}/proms/{prom_id}/patient/1").headers["Location"] \
        == f"/exams/{exam_id}/proms/{prom_id}"
    # the clinician fills it in and finishes it
    assert put(client, exam_id, prom_id, 1, all_lefs()).status_code == 200
    assert client.post(f"/exams/{exam_id}/proms/{prom_id}/finish",
                       data={"version": 2}).status_code == 303


def test_a_clinic_that_adds_the_wording_removes_the_marker_and_may_hand_it_over(
        make_app, tmp_path) -> None:
    """The marker is data: without it (the clinic put the owner's wording in each item's
    text, as questionnaires/README.md says) the same instrument goes to the patient."""
    import json

    from tests.support import knowledge_copies

    root = knowledge_copies.copy(tmp_path / "k")
    path = root / "questionnaires" / "lefs.json"
    lefs = json.loads(path.read_text())
    del lefs["extension"]
    lefs["item"][0]["text"] = "(the owner's wording of activity 1)"
    path.write_text(json.dumps(lefs))
    app = make_app({"WTF_CSRF_ENABLED": False,
                    "QUESTIONNAIRES_DIR": str(root / "questionnaires"),
                    "MAPPINGS_DIR": str(root / "mappings")})
    client = signed_in(app)
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id)
    assert ">Hand to patient</" in client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    handed = client.post(f"/exams/{exam_id}/proms/{prom_id}/hand")
    assert handed.status_code == 303 and handed.headers["Location"].endswith("/patient/1")
    page = client.get(handed.headers["Location"]).get_data(as_text=True)
    assert "(the owner&#39;s wording of activity 1)" in page
