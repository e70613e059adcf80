"""The patient page's visit list and the progress page, as a clinician sees them:
each visit's date, type, side and top condition in words; the progress page's charts
(inline SVG, no script), their data tables and change sentences, the empty state, and
the read audited before anything is served."""
from __future__ import annotations

import json
import re

import pytest

from plugin.adapters import audit, store as store_mod
from plugin.record import exams
from tests.record.test_progress import APRIL, FIRST, MARCH, SECOND, PLAN
from tests.record.test_write_audit import BY, PATIENT, SIGNER
from tests.support.signin import signed_in


@pytest.fixture()
def app(make_app):
    return make_app({"WTF_CSRF_ENABLED": False, "TIME_ZONE": "Europe/London"})


@pytest.fixture()
def client(app):
    return signed_in(app)


def _signed(app, kb, patient, answers, when, plan=None):
    store = store_mod.from_app(app)
    exam = exams.begin(store, kb, patient, now=when, by=BY)
    exam, _ = exams.save_draft(store, kb.form_for(exam.questionnaire), exam, patient,
                               expected_version=exam.version, answers=answers, now=when,
                               by=BY)
    if plan:
        exam = exams.save_impression(store, kb, exam, expected_version=exam.version,
                                     impression=plan, by=BY)
    exams.sign(store, kb, exam, patient, expected_version=exam.version, signer=SIGNER,
               now=when, ehr_base=None, by=BY)
    return exam.id


def _patient(app, family="Silva"):
    return exams.add_patient(store_mod.from_app(app), {
        **PATIENT, "name": [{"family": family, "given": ["Ana"]}],
        "identifier": [{"system": "urn:mrn", "value": f"MRN-{family}"}]}, by=BY)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_patient_page_lists_each_visit_in_words(app, client, kb) -> None:
    patient = _patient(app)
    signed = _signed(app, kb, patient, FIRST, MARCH)
    page = client.get(f"/patients/{patient.id}")
    assert page.status_code == 200
    text = _text(page.get_data(as_text=True))
    assert ("Initial exam · 3 March 2026 · Side: Left · Top condition: Lumbar "
            "radiculopathy (disc-related sciatica)") in text
    assert "Progress across visits" in text
    exams.begin(store_mod.from_app(app), kb, patient, now=APRIL, by=BY)
    text = _text(client.get(f"/patients/{patient.id}").get_data(as_text=True))
    assert "Top condition: not signed" in text  # the draft
    assert signed not in text.replace(f"/exams/{signed}", "")  # ids only in links


def test_the_progress_page_charts_with_tables_and_words(app, client, kb) -> None:
    patient = _patient(app)
    _signed(app, kb, patient, FIRST, MARCH, PLAN)
    _signed(app, kb, patient, SECOND, APRIL)
    page = client.get(f"/patients/{patient.id}/progress")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "style=" not in html  # CSP: no inline script/style
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg"') == \
        html.count('class="chart-data"') >= 3
    assert 'role="img" aria-labelledby="chart-1-slr-onset-angle-title' in html
    text = _text(html)
    assert "2 signed visits, 3 March 2026 to 14 April 2026" in text
    assert "Straight leg raise: angle at symptom onset, left +15 since 3 March 2026" in text
    assert "Current pain (0-10) -3 since 3 March 2026" in text
    assert "E1: Referral made: Physiotherapy (3 March 2026)" in text
    assert "Physiotherapy reported (6 weeks so far) (14 April 2026)" in text
    # the table holds the values the chart draws
    assert '<th scope="row">3 March 2026</th><td>40</td><td>80</td>' in html  # SLR L, R


def test_one_signed_visit_shows_the_empty_state(app, client, kb) -> None:
    patient = _patient(app)
    _signed(app, kb, patient, FIRST, MARCH)
    html = client.get(f"/patients/{patient.id}/progress").get_data(as_text=True)
    assert "Progress needs two signed visits. 1 signed so far" in html and "<svg" not in \
        html.split("<main", 1)[1]


def test_an_unknown_patient_is_a_404_not_a_500(client) -> None:
    assert client.get("/patients/not-a-patient/progress").status_code == 404


def test_the_progress_read_is_audited_before_it_is_served(app, client, kb) -> None:
    patient = _patient(app)
    before = len(list(audit.events_since(store_mod.from_app(app).engine, None)))
    assert client.get(f"/patients/{patient.id}/progress").status_code == 200
    events = [json.loads(e) for e in
              audit.events_since(store_mod.from_app(app).engine, None)][before:]
    (event,) = events
    assert event["subtype"][0]["code"] == "search-type" and event["action"] == "E"
    assert {"reference": f"Patient/{patient.id}"} in [e.get("what") for e in event["entity"]]
