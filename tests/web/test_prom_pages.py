"""Outcome questionnaires on the tablet over HTTP: added to a visit from the review,
autosaved on the version last seen (a stale one refused with the exam's message), wrong
input a field message and never a 500, a client's score never trusted, finishing only
when scored, locked with the signed exam."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from plugin.adapters import prom_store, store as store_mod
from plugin.adapters.tables import audit_events
from plugin.core import fhir_models
from tests.support.signin import signed_in

LEFS_ITEMS = [f"lefs-item-{n}" for n in range(1, 21)]


@pytest.fixture()
def app(make_app):
    return make_app({"WTF_CSRF_ENABLED": False})


@pytest.fixture()
def client(app):
    return signed_in(app)


def begin_exam(client, mrn: str = "MRN-9") -> str:
    response = client.post("/patients", data={"family": "Silva", "given": "Ana",
                                              "birth_date": "1986-03-14", "identifier": mrn,
                                              "confirm": "different-person"})
    assert response.status_code == 303
    started = client.post(response.headers["Location"] + "/exams")
    return started.headers["Location"].split("/")[2]


def add(client, exam_id: str, instrument: str = "lefs") -> str:
    response = client.post(f"/exams/{exam_id}/proms", data={"instrument": instrument})
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"].rsplit("/", 1)[-1]


def put(client, exam_id, prom_id, version, answers):
    return client.put(f"/exams/{exam_id}/proms/{prom_id}/answers", json={"answers": answers},
                      headers={"If-Match": f'"{version}"'})


def all_lefs(code: str = "lefs-3") -> dict:
    return {link_id: code for link_id in LEFS_ITEMS}


def all_start_back() -> dict:
    """Every STarT Back item at its scoring answer: total 9, high risk."""
    return {**{f"sbst-item-{n}": "sbst-agree" for n in range(1, 9)},
            "sbst-item-9": "sbst-bother-extremely"}


def events(app, resource: str) -> list[str]:
    with store_mod.from_app(app).engine.connect() as conn:
        return list(conn.execute(select(audit_events.c.action).where(
            audit_events.c.resource == resource).order_by(audit_events.c.recorded)).scalars())


def test_the_review_lists_the_visits_questionnaires_and_adds_one(client, app) -> None:
    exam_id = begin_exam(client)
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert "Outcome questionnaires" in review and "No outcome questionnaire" in review
    assert "Lower Extremity Functional Scale" in review  # offered to add
    prom_id = add(client, exam_id)
    page = client.get(f"/exams/{exam_id}/proms/{prom_id}").get_data(as_text=True)
    assert page.count('type="radio"') == 20 * 5
    assert "Phys Ther 1999" in page  # the instrument's copyright notice, on screen
    assert "not scored yet" in page
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert "Not finished" in review
    for action in ("Open", "Remove"):
        assert f">{action}</" in review
    assert ">Hand to patient</" not in review  # LEFS ships without its wording
    add(client, exam_id, "keele-start-back")
    review = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert review.count(">Hand to patient</") == 1  # STarT Back's, with LOINC's wording
    assert events(app, f"QuestionnaireResponse/{prom_id}")[0] == "C"


def test_an_unknown_instrument_is_a_message_not_a_500(client) -> None:
    exam_id = begin_exam(client)
    response = client.post(f"/exams/{exam_id}/proms", data={"instrument": "visa-h"})
    assert response.status_code == 422
    assert "Choose one of the questionnaires offered." in response.get_data(as_text=True)


def test_autosave_scores_on_the_server_and_overwrites_a_client_score(client, app) -> None:
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id)
    response = put(client, exam_id, prom_id, 1, {**all_lefs(), "lefs-total": 80})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["version"] == 2 and response.headers["ETag"] == '"2"'
    assert body["scores"] == [["LEFS total (0-80)", "60"]]
    stored = prom_store.get(store_mod.from_app(app), prom_id)
    assert "lefs-total" not in stored.answers
    total = next(i for i in stored.response["item"] if i["linkId"] == "lefs-total")
    assert total["answer"] == [{"valueInteger": 60}]


def test_a_stale_autosave_is_refused_like_the_exams(client) -> None:
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id)
    assert put(client, exam_id, prom_id, 1, {"lefs-item-1": "lefs-4"}).status_code == 200
    stale = put(client, exam_id, prom_id, 1, {"lefs-item-1": "lefs-0"})
    assert stale.status_code == 412
    assert stale.get_json()["version"] == 2
    assert "changed on another tablet or tab" in stale.get_json()["message"]
    assert client.put(f"/exams/{exam_id}/proms/{prom_id}/answers",
                      json={"answers": {}}).status_code == 428


@pytest.mark.parametrize("answers, status", [
    ({"lefs-item-1": ["lefs-4"]}, 422), ({"lefs-item-1": {"x": 1}}, 422), ("nope", 400)])
def test_a_malformed_autosave_is_refused_with_a_message(client, answers, status) -> None:
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id)
    response = put(client, exam_id, prom_id, 1, answers)
    assert response.status_code == status and response.get_json()["message"]


def test_a_wrong_value_is_kept_and_shown_with_its_message(client, app) -> None:
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id, "psfs")
    response = put(client, exam_id, prom_id, 1, {"psfs-activity-1": "Running",
                                                 "psfs-score-1": 14, "psfs-score-2": "4a"})
    assert response.status_code == 200
    assert response.get_json()["errors"] == {"psfs-score-1": ["Enter a number from 0 to 10."],
                                             "psfs-score-2": ["Enter a number."]}
    page = client.get(f"/exams/{exam_id}/proms/{prom_id}").get_data(as_text=True)
    assert "Enter a number." in page and "Enter a number from 0 to 10." in page
    kept = prom_store.get(store_mod.from_app(app), prom_id).answers
    assert kept["psfs-score-2"] == "4a" and kept["psfs-score-1"] == 14


def test_finishing_needs_every_item_then_freezes_the_answers(client, app, kb) -> None:
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id)
    put(client, exam_id, prom_id, 1, {"lefs-item-1": "lefs-4"})
    early = client.post(f"/exams/{exam_id}/proms/{prom_id}/finish", data={"version": 2})
    assert early.status_code == 422
    assert early.get_data(as_text=True).count("Answer this question.") == 19
    put(client, exam_id, prom_id, 2, all_lefs("lefs-2"))
    done = client.post(f"/exams/{exam_id}/proms/{prom_id}/finish", data={"version": 3})
    assert done.status_code == 303
    stored = prom_store.get(store_mod.from_app(app), prom_id)
    assert stored.finished and stored.response["status"] == "completed"
    assert fhir_models.validate(dict(stored.response)) == []
    assert put(client, exam_id, prom_id, 4, {"lefs-item-1": "lefs-0"}).status_code == 409
    assert client.post(f"/exams/{exam_id}/proms/{prom_id}/remove",
                       data={"version": 4}).status_code == 409
    assert "40" in client.get(f"/exams/{exam_id}/review").get_data(as_text=True)


def test_an_unfinished_questionnaire_is_removed(client, app) -> None:
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id)
    response = client.post(f"/exams/{exam_id}/proms/{prom_id}/remove", data={"version": 1})
    assert response.status_code == 303
    assert prom_store.for_exam(store_mod.from_app(app), exam_id) == []
    assert events(app, f"QuestionnaireResponse/{prom_id}")[-1] == "D"
    assert client.get(f"/exams/{exam_id}/proms/{prom_id}").status_code == 404


def test_another_exams_questionnaire_is_not_found(client) -> None:
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id)
    other = begin_exam(client, "MRN-10")
    assert client.get(f"/exams/{other}/proms/{prom_id}").status_code == 404
    assert client.get(f"/exams/{exam_id}/proms/not-a-uuid").status_code == 404


def test_an_assistant_fills_in_but_cannot_add_or_hand_over(app, client) -> None:
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id)
    assistant = signed_in(app, "assistant")
    assert assistant.post(f"/exams/{exam_id}/proms", data={"instrument": "lefs"}
                          ).status_code == 403
    assert assistant.post(f"/exams/{exam_id}/proms/{prom_id}/hand").status_code == 403
    assert put(assistant, exam_id, prom_id, 1, {"lefs-item-1": "lefs-1"}).status_code == 200


def test_user_text_is_escaped(client) -> None:
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id, "psfs")
    put(client, exam_id, prom_id, 1, {"psfs-activity-1": "<script>alert(1)</script>"})
    page = client.get(f"/exams/{exam_id}/proms/{prom_id}").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page
    assert not re.search(r"<script(?![^>]*(src=|application/json))", page)


def test_a_signed_exams_questionnaire_is_locked_with_it(client, app, kb, form) -> None:
    from tests.support import tablet

    exam_id = begin_exam(client)
    prom_id = add(client, exam_id)
    store = store_mod.from_app(app)
    exam = store.exam(exam_id)
    tablet.sign(app, kb, exam, store.patient(exam.patient_id), tablet.MARCH, answers={})
    refused = put(client, exam_id, prom_id, 1, {"lefs-item-1": "lefs-4"})
    assert refused.status_code == 409 and "signed" in refused.get_json()["message"]
    again = client.post(f"/exams/{exam_id}/proms", data={"instrument": "lefs"})
    assert again.status_code == 303 and again.headers["Location"] == f"/exams/{exam_id}/record"
    assert len(prom_store.for_exam(store, exam_id)) == 1


def test_the_review_audits_each_questionnaire_it_lists(client, app) -> None:
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id)
    before = events(app, f"QuestionnaireResponse/{prom_id}").count("R")
    client.get(f"/exams/{exam_id}/review")
    assert events(app, f"QuestionnaireResponse/{prom_id}").count("R") == before + 1


@pytest.mark.parametrize("body", [
    "not json", "[]", '{"answers": []}', '{"answers": {"lefs-item-1": NaN}}',
    '{"answers": {"lefs-item-1": "lefs-4\\u0000"}}', '{"answers": {"lefs-item-1": true}}',
    '{"answers": {"lefs-item-1": 1e400}}', '{"answers": {"lefs-item-1": "' + "x" * 5000 + '"}}',
])
def test_hostile_autosaves_are_refused_or_reported_never_a_500(client, body) -> None:
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id)
    response = client.put(f"/exams/{exam_id}/proms/{prom_id}/answers", data=body,
                          headers={"If-Match": '"1"', "Content-Type": "application/json"})
    assert response.status_code in (200, 400, 422), response.get_data(as_text=True)
    assert response.get_json()
    if response.status_code == 200:  # kept as entered, reported, never scored
        assert response.get_json()["errors"]["lefs-item-1"]


def test_hostile_patient_screen_posts_are_refused_never_a_500(client) -> None:
    exam_id = begin_exam(client)
    prom_id = add(client, exam_id, "keele-start-back")
    assert client.post(f"/exams/{exam_id}/proms/{prom_id}/hand").status_code == 303
    base = f"/exams/{exam_id}/proms/{prom_id}/patient"
    assert client.post(f"{base}/1", data={"version": "abc", "sbst-item-1": "sbst-agree"}
                       ).status_code == 400
    skipped = client.post(f"{base}/1", data={"version": "abc"})  # nothing to save: on
    assert skipped.status_code == 303 and skipped.headers["Location"].endswith("/patient/2")
    assert client.post(f"{base}/999", data={"version": 1}).status_code == 404
    assert client.get(f"{base}/0").status_code == 404
    wrong = client.post(f"{base}/1", data={"version": 1, "sbst-item-1": "lefs-4"})
    assert wrong.status_code == 422
    assert "Choose one of the answers shown." in wrong.get_data(as_text=True)
