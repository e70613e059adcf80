"""The tablet review shows the visit's outcome measures as the record will keep them:
each score with its band, the copyright notice, the decision support's suggestion from a
STarT Back high risk; a PROM that is not finished is named on the review and refuses
the signature (nothing signed). The PROMs are added and finished as the tablet does
(``record.proms``)."""
from __future__ import annotations

import html
import json

import datetime as dt

from plugin.adapters import audit, store as store_mod
from plugin.record import proms
from tests.record.test_write_audit import BY
from tests.support import pages, pdfs
from tests.support.prom_cases import add_finished, start_back
from tests.support.signin import PASSWORD

NOW = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc)


def _visit(app, exam_id: str):
    store = store_mod.from_app(app)
    exam = store.exam(exam_id)
    return store, exam, store.patient(exam.patient_id)


def test_the_review_shows_scores_bands_copyright_and_the_suggestion(app, client, kb):
    exam_id, _ = pages.ready_exam(client)
    store, exam, patient = _visit(app, exam_id)
    add_finished(store, kb, exam, patient, start_back({1, 5, 6, 7, 8}, "very-much"), now=NOW,
                 by=BY)
    engine = store_mod.from_app(app).engine
    before = len(list(audit.events_since(engine, None)))
    page = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    # the patient's earlier scores were searched: audited as a search of Observations
    new = [json.loads(e) for e in list(audit.events_since(engine, None))[before:]]
    assert any(e.get("subtype", [{}])[0].get("code") == "search-type"
               and "search of Observation" in json.dumps(e) for e in new)
    shown = html.unescape(page[page.index('id="proms"'):])
    assert "Keele STarT Back Screening Tool" in shown
    # LOINC's answer "High" (LA9193-9) says the band: not repeated as "High, high risk"
    assert "<strong>STarT Back risk group: High</strong>" in shown
    assert "© Keele University 2007" in shown and "keele.ac.uk/sbst" in shown
    assert "Consider psychologically informed physiotherapy" in page
    # the draft's clinician summary prints the same, with the copyright notice
    draft = pdfs.text_of(client.get(f"/exams/{exam_id}/summary.pdf").data)
    flat = " ".join(draft.split())
    assert "STarT Back risk group: High." in flat and "© Keele University 2007" in flat


def test_an_unfinished_prom_is_named_and_refuses_the_signature(app, client, kb):
    exam_id, version = pages.ready_exam(client)
    store, exam, patient = _visit(app, exam_id)
    prom = proms.add(store, kb, exam, patient, "lefs", now=NOW, by=BY)
    proms.save(store, kb, prom, patient, expected_version=prom.version,
               answers={"lefs-item-1": "lefs-2"}, now=NOW, by=BY)
    page = client.get(f"/exams/{exam_id}/review").get_data(as_text=True)
    assert 'id="prom-problem"' in page
    assert "The Lower Extremity Functional Scale (LEFS) questionnaire is not finished" in page
    signed = client.post(f"/exams/{exam_id}/sign", data={"version": version,
                                                         "password": PASSWORD})
    assert signed.status_code == 422
    assert "Lower Extremity Functional Scale (LEFS)" in signed.get_data(as_text=True)
    assert store_mod.from_app(app).exam(exam_id).state == "draft"
