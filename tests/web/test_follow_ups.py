"""A follow-up visit on the tablet, end to end (K3): begun from a signed exam's record
page, recorded on the follow-up's own pages, reviewed with the same decision support,
signed, printed, served by the FHIR API, its Observations found with the first visit's
by code and date. An unsigned exam is refused with a clear message. SQLite and
PostgreSQL."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from plugin.adapters import store as store_mod
from plugin.core import layout
from plugin.record import exams
from tests.record.test_write_audit import BY, SIGNER
from tests.support import pages, pdfs, rendering
from tests.support.conformance import assert_conformant
from tests.support.signin import PASSWORD, signed_in

FOLLOW_UP = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-follow-up"


@pytest.fixture()
def app(make_app, database_url):
    return make_app({"WTF_CSRF_ENABLED": False, "DATABASE_URL": database_url})


@pytest.fixture()
def client(app):
    return signed_in(app)


def _save(client, exam_id, version, section, answers):
    response = pages.save(client, exam_id, version, answers, section)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["version"]


def _signed_initial(client) -> str:
    exam_id, version = pages.start_exam(client)
    version = _save(client, exam_id, version, "history", {
        "history.affected-side": "left", "history.onset": "sudden",
        "history.imaging": ["ultrasound"]})
    version = _save(client, exam_id, version, "slr", {
        "slr.left.onset-angle": 60, "slr.left.response": "hamstring-stretch-only"})
    signed = client.post(f"/exams/{exam_id}/sign", data={"version": version,
                                                         "password": PASSWORD})
    assert signed.status_code == 303, signed.get_data(as_text=True)
    return exam_id


def test_a_follow_up_is_recorded_reviewed_signed_and_served(app, client, kb,
                                                           validator) -> None:
    first = _signed_initial(client)
    record = client.get(f"/exams/{first}/record").get_data(as_text=True)
    assert 'id="begin-follow-up"' in record and "Follow-up visit" in record
    begun = client.post(f"/exams/{first}/follow-ups")
    assert begun.status_code == 303
    follow_up = begun.headers["Location"].split("/")[2]
    form = kb.forms["posterior-thigh-follow-up"]
    assert begun.headers["Location"] == f"/exams/{follow_up}/pages/{form.top[0]}"
    assert client.post(f"/exams/{first}/follow-ups").headers["Location"] == \
        begun.headers["Location"]  # a second tap resumes it
    # every page of the follow-up renders from its own form; the history page shows
    # what was carried
    for page in layout.pages(form):
        shown = client.get(f"/exams/{follow_up}/pages/{page.item.link_id}")
        assert shown.status_code == 200, page.item.link_id
    history = client.get(f"/exams/{follow_up}/pages/history").get_data(as_text=True)
    assert history.count('class="carried"') == 2
    neuro = client.get(f"/exams/{follow_up}/pages/neuro").get_data(as_text=True)
    assert "neuro.since-last-visit" in neuro and "Unchanged" in neuro
    version = pages.version_of(history)
    version = _save(client, follow_up, version, "slr", {
        "slr.left.onset-angle": 45, "slr.left.response": "leg-pain-below-knee"})
    version = _save(client, follow_up, version, "neuro", {"neuro.since-last-visit": "unchanged"})
    version = _save(client, follow_up, version, "follow-up", {
        "follow-up.global-rating": "worse", "follow-up.adherence": "most",
        "follow-up.what-changed": "Pain now <b>below</b> the knee"})
    review = client.get(f"/exams/{follow_up}/review").get_data(as_text=True)
    assert "Lumbar radiculopathy" in review  # the same engine, on the shared linkIds
    assert "<b>below</b>" not in review and "&lt;b&gt;below&lt;/b&gt;" in review
    signed = client.post(f"/exams/{follow_up}/sign", data={"version": version,
                                                           "password": PASSWORD})
    assert signed.status_code == 303, signed.get_data(as_text=True)
    assert rendering.render_pending(app) == 2
    page = client.get(f"/exams/{follow_up}/record").get_data(as_text=True)
    assert "Worse" in page and 'id="begin-follow-up"' in page
    # its summary prints the follow-up's own items, in words; adherence is not a finding
    summary = pdfs.text_of(client.get(f"/exams/{follow_up}/summary.pdf").data)
    assert summary.startswith("Posterior thigh pain follow-up: clinician summary")
    assert "Adherence to the programme: Most of it" in summary
    assert "▲ Adherence" not in summary and "global rating of change: Worse" in summary
    assert "Neurological screen since the last visit Unchanged" in summary
    assert "follow-up.global-rating" not in summary
    assert f"{FOLLOW_UP}|1.0.0" in summary
    qr = client.get(f"/fhir/QuestionnaireResponse/{follow_up}").get_json()
    assert qr["questionnaire"] == f"{FOLLOW_UP}|1.0.0" and qr["status"] == "completed"
    assert_conformant(validator, qr)
    served = client.get("/fhir/Questionnaire/posterior-thigh-follow-up").get_json()
    assert served["url"] == FOLLOW_UP
    assert_conformant(validator, served)
    store = store_mod.from_app(app)
    assert [e.id for e in store.episode_exams(first)] == [first, follow_up]


def test_an_unsigned_exam_refuses_a_follow_up_with_a_message(app, client) -> None:
    exam_id, _ = pages.start_exam(client)
    refused = client.post(f"/exams/{exam_id}/follow-ups")
    assert refused.status_code == 409
    assert "Only a signed exam can be followed up: sign this exam first." in \
        refused.get_data(as_text=True)
    store = store_mod.from_app(app)
    assert len(store.episode_exams(exam_id)) == 1


def test_only_a_clinician_begins_a_follow_up(app, client) -> None:
    first = _signed_initial(client)
    assistant = signed_in(app, "assistant")
    assert 'id="begin-follow-up"' not in assistant.get(f"/exams/{first}/record").get_data(
        as_text=True)
    assert assistant.post(f"/exams/{first}/follow-ups").status_code == 403


MARCH = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
APRIL = dt.datetime(2026, 4, 6, 9, 0, tzinfo=dt.timezone.utc)


def _visits(app, kb):
    """An initial exam in March and its follow-up in April, signed through the use
    cases (their dates chosen), each with a left SLR angle."""
    store = store_mod.from_app(app)
    record = exams.add_patient(store, {"resourceType": "Patient", "name": [
        {"family": "Okoye", "given": ["Ada"]}], "birthDate": "1979-02-03"}, by=BY)
    signed = []
    exam = exams.begin(store, kb, record, now=MARCH, by=BY)
    for when, answers in ((MARCH, {"slr.left.onset-angle": 40, "pain.current": 6}),
                          (APRIL, {"slr.left.onset-angle": 70, "pain.current": 2,
                                   "neuro.since-last-visit": "unchanged"})):
        if signed:
            exam = exams.begin_follow_up(store, kb, signed[0], now=when, by=BY)
        form = kb.form_for(exam.questionnaire)
        exam, _ = exams.save_draft(store, form, exam, record, expected_version=exam.version,
                                   answers={**exam.answers, **answers}, now=when, by=BY)
        exams.sign(store, kb, exam, record, expected_version=exam.version, signer=SIGNER,
                   now=when, ehr_base=None, by=BY)
        signed.append(store.exam(exam.id))
    return record, signed


def test_observations_trend_across_visits_by_code_and_date(app, client, kb,
                                                          validator) -> None:
    record, (first, second) = _visits(app, kb)

    def search(query: str) -> list[tuple[str, int]]:
        bundle = client.get(f"/fhir/Observation?patient={record.id}&{query}").get_json()
        assert bundle["resourceType"] == "Bundle", bundle
        assert_conformant(validator, bundle)
        return [(e["resource"]["effectiveDateTime"][:10], e["resource"]["valueQuantity"]
                 ["value"]) for e in bundle.get("entry", [])]
    assert search("code=slr.onset-angle&_sort=date") == [("2026-03-02", 40),
                                                         ("2026-04-06", 70)]
    assert search("code=slr.onset-angle&_sort=-date") == [("2026-04-06", 70),
                                                          ("2026-03-02", 40)]
    assert search("code=slr.onset-angle&date=ge2026-03-01&date=le2026-03-31") == [
        ("2026-03-02", 40)]
    assert search("code=slr.onset-angle&date=ge2026-04-01&_sort=date") == [("2026-04-06", 70)]
    # the follow-up's own coded answer is found the same way; no per-item neuro
    bundle = client.get(f"/fhir/Observation?patient={record.id}&code=neuro.since-last-visit"
                        ).get_json()
    assert [e["resource"]["valueCodeableConcept"]["coding"][0]["code"]
            for e in bundle["entry"]] == ["unchanged"]
    grid = client.get(f"/fhir/Observation?patient={record.id}&code=neuro.power.l5").get_json()
    assert grid.get("entry", []) == []
    assert re.fullmatch(r"[0-9a-f-]{36}", second.id) and second.episode_id == first.id
