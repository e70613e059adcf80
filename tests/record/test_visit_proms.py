"""A visit's outcome measures (PROMs) belong to its signed record: signed with the exam,
they are in the frozen revision with their meaning as signed, in the record the EHR
receives (each response and its survey Observations, exactly once, also through faults
and retries, and again under the same identifiers after an amendment), in the
Observations the FHIR API searches across visits, on the record page and in the
clinician summary PDF (score, band, change since the earlier visit, copyright); a
STarT Back high risk makes the decision support suggest psychologically informed
physiotherapy. On SQLite and on a real PostgreSQL server; both validators pass."""
from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, update

from plugin.adapters import frozen as frozen_store, prom_store, store as store_mod
from plugin.adapters.tables import outbox as outbox_table, prom_responses
from plugin.core.fhir_models import validate
from plugin.errors import ConflictError, InputError
from plugin.record import exams, freeze, proms
from tests.adapters.test_delivery import MRN, fhir_server  # noqa: F401 (a fixture)
from tests.adapters.test_delivery_strict import ALL, EHR_RUTH, assert_arrived_complete_once, \
    until_delivered, without_tag
from tests.record.test_write_audit import BY, SIGNER
from tests.support import pdfs
from tests.support.conformance import assert_conformant
from tests.support.prom_cases import OM, add_finished, lefs, start_back
from tests.support.signin import signed_in
from tests.support.tablet import ANSWERS

NOW = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc)
BEFORE = NOW - dt.timedelta(days=40)  # 27 October 2026
RUTH = {"resourceType": "Patient", "identifier": [{"system": MRN, "value": "MRN-7"}],
        "name": [{"family": "Osei", "given": ["Ruth"]}], "birthDate": "1974-01-08"}
LOINC = "http://loinc.org"
FOCUS = "psychologically informed physiotherapy"


@pytest.fixture()
def server(fhir_server):  # noqa: F811 (the imported fixture)
    fhir_server.reset()
    fhir_server.seed(EHR_RUTH)
    return fhir_server


def _at(response: dict[str, Any], when: dt.datetime) -> dict[str, Any]:
    return {**response, "authored": when.isoformat()}


def _visit(store, kb, patient, when: dt.datetime, proms, ehr_base: str) -> str:
    exam = exams.begin(store, kb, patient, now=when, by=BY)
    form = kb.form_for(exam.questionnaire)
    exam, _ = exams.save_draft(store, form, exam, patient, expected_version=exam.version,
                               answers=ANSWERS, now=when, by=BY)
    for response in proms:  # as the tablet adds them and the patient finishes them
        add_finished(store, kb, exam, patient, response, now=when, by=BY)
    exams.sign(store, kb, exam, patient, expected_version=exam.version, signer=SIGNER,
               now=when, ehr_base=ehr_base, by=BY)
    return exam.id


def _queued(store, exam_id: str) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(outbox_table.c.payload).where(
            outbox_table.c.exam_id == exam_id).order_by(outbox_table.c.revision)).scalars())


def _of_type(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_a_visits_proms_reach_the_record_the_ehr_the_api_and_the_summary(
        make_app, database_url, kb, server, validator) -> None:
    app = make_app({"WTF_CSRF_ENABLED": False, "DATABASE_URL": database_url})
    store = store_mod.from_app(app)
    patient = exams.add_patient(store, RUTH, by=BY)
    first = _visit(store, kb, patient, BEFORE,
                   [_at(lefs({n: 2 for n in range(1, 21)}), BEFORE)], server.url)  # LEFS 40
    high = start_back({1, 5, 6, 7, 8}, "very-much")  # total 6, psychosocial 5: high risk
    proms = [_at(lefs({n: 3 for n in range(1, 21)}), NOW), _at(high, NOW)]  # LEFS 60
    proms[0]["item"].append({"linkId": "lefs-total", "answer": [{"valueInteger": 80}]})
    second = _visit(store, kb, patient, NOW, proms, server.url)

    # the frozen revision: the scores recomputed (the client's 80 ignored), the meaning
    frozen, _ = freeze.read(store, second, 1)
    lefs_qr, sbst_qr = frozen.prom_responses
    assert lefs_qr["item"][-1] == {"linkId": "lefs-total", "text": "LEFS total (0-80)",
                                   "answer": [{"valueInteger": 60}]}
    shown_lefs, shown_sbst = frozen.proms()
    (total,) = shown_lefs.scores
    assert (total.value, total.meaningful) == ("60", True)
    assert total.change == "LEFS +20 since 27 October 2026: a meaningful improvement"
    assert "MCID 9 points" in total.sources[0]
    assert [s.value for s in shown_sbst.scores] == ["6", "5", "High"]
    assert shown_sbst.scores[-1].band == "high risk"
    assert "© Keele University 2007" in shown_sbst.copyright
    # the decision support: STarT Back high risk -> the physiotherapy focus, with its source
    physio = next(r for r in frozen.assessment["referrals"] if r["service"] == "physiotherapy")
    assert any(FOCUS in f for f in physio["focus"])
    (focus,) = [f for f in frozen.assessment["pt_focus"] if FOCUS in f["focus"]]
    assert focus["citations"] == ["nice-ng59-stratification"]
    assert focus["focus"].startswith("Consider")  # a suggestion, never an order
    assert [f["id"] for f in frozen.assessment["contributing_factors"]] == ["psychosocial-risk"]
    first_frozen, _ = freeze.read(store, first, 1)
    assert not any(FOCUS in f["focus"] for f in first_frozen.assessment["pt_focus"])

    # the record Bundle as queued for the EHR: both validators pass
    (record,) = _queued(store, second)
    assert validate(record) == []
    assert_conformant(validator, record)
    exam_qr, *prom_qrs = _of_type(record, "QuestionnaireResponse")
    assert [q["identifier"]["value"] for q in prom_qrs] == [
        f"{second}/prom/lefs", f"{second}/prom/keele-start-back"]
    for qr in prom_qrs:
        assert qr["subject"] == exam_qr["subject"] and qr["author"] == exam_qr["author"]
        assert qr["status"] == "completed" and qr["source"] == exam_qr["subject"]
    urls = {e["resource"]["identifier"]["value"]: e["fullUrl"] for e in record["entry"]
            if e["resource"]["resourceType"] == "QuestionnaireResponse"}
    prom_urls = {urls[f"{second}/prom/lefs"], urls[f"{second}/prom/keele-start-back"]}
    surveys = [o for o in _of_type(record, "Observation")
               if o.get("derivedFrom", [{}])[0].get("reference") in prom_urls]
    codes = {(c["system"], c["code"]) for o in surveys for c in o["code"]["coding"]}
    assert codes == {(OM, "lefs-total"), (LOINC, "91351-7"), (LOINC, "91350-9"),
                     (OM, "sbst-psychosocial"), (LOINC, "91352-5"), (OM, "sbst-risk")}
    assert {o["category"][0]["coding"][0]["code"] for o in surveys} == {"survey"}

    # the FHIR API: the patient's LEFS across visits, and by date
    client = signed_in(app)
    found = client.get(f"/fhir/Observation?patient={patient.id}&code={OM}|lefs-total"
                       "&_sort=date").get_json()
    assert [e["resource"]["valueInteger"] for e in found["entry"]] == [40, 60]
    recent = client.get(f"/fhir/Observation?patient={patient.id}&code={LOINC}|91351-7"
                        f"&date=ge{NOW.date().isoformat()}").get_json()
    (sbst_total,) = [e["resource"] for e in recent["entry"]]
    assert sbst_total["valueInteger"] == 6 and sbst_total["subject"] == {
        "reference": f"Patient/{patient.id}"}
    assert sbst_total["derivedFrom"][0]["identifier"]["value"] == f"{second}/prom/keele-start-back"
    assert validate(sbst_total) == []
    assert_conformant(validator, sbst_total)

    # the record page and the clinician summary PDF, from the frozen revision
    page = client.get(f"/exams/{second}/record").get_data(as_text=True)
    assert "LEFS +20 since 27 October 2026: a meaningful improvement" in page
    assert "Keele STarT Back Screening Tool © Keele University 2007" in page
    assert freeze.render_pending(store, worker_id="t", lease_seconds=60) == 2
    summary = pdfs.text_of(frozen_store.document(store, second, 1, "summary").content)
    flat = " ".join(summary.split())
    assert "LEFS total (0-80): 60; LEFS +20 since 27 October 2026: a meaningful improvement" \
        in flat
    assert "STarT Back risk group: High." in flat  # LOINC's "High" says the band
    assert "© Keele University 2007" in flat and "Binkley JM" in flat
    assert FOCUS in flat

    # the EHR: the strictest test EHR, through faults and retries, gets each once
    server.strict(**ALL)
    without_tag(server)
    server.faults({"status": 503}, {"drop": True}, {"delay": 0.8})
    until_delivered(store, server.url, [first, second])
    assert_arrived_complete_once(server, [*_queued(store, first), record], validator)
    held = server.state()["resources"]
    arrived = [r for r in held if r["resourceType"] == "Observation"
               and r["code"]["coding"][0]["code"] in ("lefs-total", "91351-7")]
    assert sorted((r["code"]["coding"][0]["code"], r["valueInteger"]) for r in arrived) == [
        ("91351-7", 6), ("lefs-total", 40), ("lefs-total", 60)]

    # an amendment carries the same PROMs again, under the same identifiers
    exam = store.exam(second)
    form = kb.form_for(exam.questionnaire)
    exam = exams.amend(store, form, exam, patient, expected_version=exam.version,
                       reason="Typing error in the history.", now=NOW, by=BY)
    exams.sign(store, kb, exam, patient, expected_version=exam.version, signer=SIGNER,
               now=NOW + dt.timedelta(hours=1), ehr_base=server.url, by=BY)
    _, amended = _queued(store, second)
    assert [q["identifier"]["value"] for q in _of_type(amended, "QuestionnaireResponse")[1:]] \
        == [f"{second}/prom/lefs", f"{second}/prom/keele-start-back"]
    again = client.get(f"/fhir/Observation?patient={patient.id}&code={OM}|lefs-total"
                       "&_sort=date").get_json()
    assert [(e["resource"]["valueInteger"], e["resource"]["meta"]["versionId"])
            for e in again["entry"]] == [(40, "1"), (60, "2")]
    for url in (f"/exams/{second}/record", f"/exams/{second}/revisions/1"):
        shown = client.get(url).get_data(as_text=True)  # as signed, each revision
        assert "LEFS +20 since 27 October 2026: a meaningful improvement" in shown, url
    assert freeze.render_pending(store, worker_id="t", lease_seconds=60) == 1
    until_delivered(store, server.url, [second])
    after = server.state()["resources"]
    assert sum(r["resourceType"] == "Observation"
               and r["code"]["coding"][0]["code"] == "lefs-total" for r in after) == 2


def test_an_unfinished_or_broken_prom_refuses_the_signature(store, kb) -> None:
    patient = exams.add_patient(store, RUTH, by=BY)
    exam = exams.begin(store, kb, patient, now=NOW, by=BY)
    form = kb.form_for(exam.questionnaire)
    exam, _ = exams.save_draft(store, form, exam, patient, expected_version=exam.version,
                               answers=ANSWERS, now=NOW, by=BY)

    def refused(words: str) -> None:
        with pytest.raises(InputError) as refusal:
            exams.sign(store, kb, exam, patient, expected_version=exam.version,
                       signer=SIGNER, now=NOW, ehr_base=None, by=BY)
        assert words in refusal.value.message
        assert refusal.value.status == 422

    # a PROM added to the visit and not finished
    unfinished = proms.add(store, kb, exam, patient, "lefs", now=NOW, by=BY)
    proms.save(store, kb, unfinished, patient, expected_version=unfinished.version,
               answers={"lefs-item-1": "lefs-2"}, now=NOW, by=BY)
    refused("The Lower Extremity Functional Scale (LEFS) questionnaire is not finished")
    proms.remove(store, prom_store.get(store, unfinished.id), expected_version=2, by=BY)
    # a stored response whose answer the instrument does not have (written behind the
    # product's back): re-checked at the signature
    broken = add_finished(store, kb, exam, patient, start_back(set(), "not-at-all"), now=NOW,
                          by=BY)
    with store.engine.begin() as conn:
        response = copy.deepcopy(broken.response)
        response["item"][0]["answer"][0]["valueCoding"]["code"] = "sbst-maybe"
        conn.execute(update(prom_responses).where(prom_responses.c.id == broken.id)
                     .values(response=response))
    refused("Keele STarT Back Screening Tool: sbst-item-1")
    # an instrument no longer loaded (its file taken out of questionnaires/)
    with store.engine.begin() as conn:
        conn.execute(update(prom_responses).where(prom_responses.c.id == broken.id)
                     .values(instrument="http://example.org/Q|1"))
    refused("is no longer loaded")
    assert store.exam(exam.id).state == "draft"  # nothing signed, nothing lost
    assert store.search_observations(patient_ids=[patient.id])[0] == 0
    assert dict(store.exam(exam.id).answers) == ANSWERS


def test_a_prom_added_while_the_exam_is_being_signed_refuses_the_signature(store, kb):
    """The visit's PROMs are read, then the signature is written: one added between the
    two is never left out of the record (or locked unfinished by it)."""
    patient = exams.add_patient(store, RUTH, by=BY)
    exam = exams.begin(store, kb, patient, now=NOW, by=BY)
    form = kb.form_for(exam.questionnaire)
    exam, _ = exams.save_draft(store, form, exam, patient, expected_version=exam.version,
                               answers=ANSWERS, now=NOW, by=BY)
    add_finished(store, kb, exam, patient, lefs({n: 2 for n in range(1, 21)}), now=NOW, by=BY)
    read = proms.completed

    def read_then_add(*args, **kwargs):
        found = read(*args, **kwargs)
        proms.add(store, kb, exam, patient, "keele-start-back", now=NOW, by=BY)
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(proms, "completed", read_then_add)
        with pytest.raises(ConflictError, match="outcome questionnaires changed"):
            exams.sign(store, kb, exam, patient, expected_version=exam.version,
                       signer=SIGNER, now=NOW, ehr_base=None, by=BY)
    assert store.exam(exam.id).state == "draft"
    assert store.search_observations(patient_ids=[patient.id])[0] == 0


def test_prom_dates_are_the_clinics_days(store, kb) -> None:
    """Answered at 09:00 in Auckland, which is the evening before in UTC: the record says
    the clinic's day, for the response and for the earlier score it is compared with."""
    patient = exams.add_patient(store, RUTH, by=BY)
    evening = dt.datetime(2026, 12, 5, 20, 0, tzinfo=dt.timezone.utc)  # 6 Dec, 09:00 NZDT
    exam_ids = []
    for when, rating in ((evening - dt.timedelta(days=40), 2), (evening, 3)):
        exam = exams.begin(store, kb, patient, now=when, by=BY)
        exam, _ = exams.save_draft(store, kb.form_for(exam.questionnaire), exam, patient,
                                   expected_version=exam.version, answers=ANSWERS, now=when,
                                   by=BY)
        add_finished(store, kb, exam, patient, lefs({n: rating for n in range(1, 21)}),
                     now=when, by=BY)
        exams.sign(store, kb, exam, patient, expected_version=exam.version, signer=SIGNER,
                   now=when, ehr_base=None, by=BY, time_zone="Pacific/Auckland")
        exam_ids.append(exam.id)
    (shown,) = freeze.read(store, exam_ids[1], 1)[0].proms()
    assert shown.authored == "2026-12-06"
    assert shown.scores[0].change == "LEFS +20 since 27 October 2026: a meaningful improvement"
