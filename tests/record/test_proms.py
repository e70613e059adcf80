"""The visit's PROM use cases, contract K1: ``completed`` hands the signature each
finished PROM as a scored QuestionnaireResponse (its scores recomputed, never read back),
in the order added, and refuses while one is unfinished, naming it. Every write leaves
its AuditEvent."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from plugin.adapters import prom_store
from plugin.adapters.tables import audit_events
from plugin.core import fhir_models
from plugin.errors import AnswerError, InputError, LockedError
from plugin.record import proms
from plugin.record.trail import By
from plugin.core.audit_events import Actor
from tests.adapters.test_store import ANA, QUESTIONNAIRE, draft, sign

NOW = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc)
BY = By(Actor(username="ann", display="Dr Ann Lee", practitioner_id=None, role="clinician"),
        "10.0.0.7")
LEFS = {f"lefs-item-{n}": "lefs-2" for n in range(1, 21)}


@pytest.fixture()
def visit(sqlite_store):
    patient = sqlite_store.add_patient(ANA)
    exam = sqlite_store.create_exam(patient.id, QUESTIONNAIRE, answers={}, draft=draft({}))
    return sqlite_store, exam, patient


def _finished(store, kb, exam, patient, instrument, answers):
    prom = proms.add(store, kb, exam, patient, instrument, now=NOW, by=BY)
    prom, _ = proms.save(store, kb, prom, patient, expected_version=1, answers=answers,
                         now=NOW, by=BY)
    return proms.finish(store, kb, prom, patient, expected_version=2, now=NOW, by=BY)


def test_completed_gives_the_finished_proms_scored_in_the_order_added(visit, kb) -> None:
    store, exam, patient = visit
    _finished(store, kb, exam, patient, "psfs", {"psfs-activity-1": "Running",
                                                 "psfs-score-1": 4})
    lefs = _finished(store, kb, exam, patient, "lefs", LEFS)
    found = proms.completed(store, kb, exam.id)
    assert [r["questionnaire"] for r in found] == [
        "http://posterior-thigh-exam.org/fhir/Questionnaire/psfs|1.0.0",
        "http://posterior-thigh-exam.org/fhir/Questionnaire/lefs|1.0.0"]
    assert all(r["status"] == "completed" for r in found)
    assert found[1]["subject"]["reference"] == f"Patient/{patient.id}"
    assert found[1]["authored"] == "2026-12-06T09:00:00+00:00"
    total = next(i for i in found[1]["item"] if i["linkId"] == "lefs-total")
    assert total["answer"] == [{"valueInteger": 40}]
    assert all(fhir_models.validate(r) == [] for r in found)
    assert lefs.response["id"] == lefs.id


def test_a_stored_score_is_recomputed_not_trusted(visit, kb) -> None:
    store, exam, patient = visit
    prom = _finished(store, kb, exam, patient, "lefs", LEFS)
    tampered = {**prom.response, "item": [
        *(i for i in prom.response["item"] if i["linkId"] != "lefs-total"),
        {"linkId": "lefs-total", "answer": [{"valueInteger": 80}]}]}
    from sqlalchemy import update
    from plugin.adapters.tables import prom_responses
    with store.engine.begin() as conn:
        conn.execute(update(prom_responses).where(prom_responses.c.id == prom.id)
                     .values(response=tampered))
    total = next(i for i in proms.completed(store, kb, exam.id)[0]["item"]
                 if i["linkId"] == "lefs-total")
    assert total["answer"] == [{"valueInteger": 40}]


def test_an_unfinished_prom_holds_the_signature_naming_it(visit, kb) -> None:
    store, exam, patient = visit
    _finished(store, kb, exam, patient, "lefs", LEFS)
    open_ = proms.add(store, kb, exam, patient, "keele-start-back", now=NOW, by=BY)
    with pytest.raises(InputError, match="Keele STarT Back"):
        proms.completed(store, kb, exam.id)
    proms.remove(store, open_, expected_version=1, by=BY)
    assert len(proms.completed(store, kb, exam.id)) == 1


def test_finishing_names_each_question_left_and_keeps_the_prom_open(visit, kb) -> None:
    store, exam, patient = visit
    prom = proms.add(store, kb, exam, patient, "keele-start-back", now=NOW, by=BY)
    prom, _ = proms.save(store, kb, prom, patient, expected_version=1,
                         answers={"sbst-item-1": "sbst-agree"}, now=NOW, by=BY)
    with pytest.raises(AnswerError) as refused:
        proms.finish(store, kb, prom, patient, expected_version=2, now=NOW, by=BY)
    assert sorted(refused.value.errors) == [f"sbst-item-{n}" for n in range(2, 10)]
    assert not prom_store.get(store, prom.id).finished


def test_a_signed_exams_proms_are_locked(visit, kb) -> None:
    store, exam, patient = visit
    prom = proms.add(store, kb, exam, patient, "lefs", now=NOW, by=BY)
    sign(store, exam, {})
    with pytest.raises(LockedError):
        proms.save(store, kb, prom, patient, expected_version=1, answers=LEFS, now=NOW, by=BY)
    with pytest.raises(LockedError):
        proms.add(store, kb, store.exam(exam.id), patient, "lefs", now=NOW, by=BY)


def test_each_write_is_audited_as_the_clinician_for_the_patient(visit, kb) -> None:
    store, exam, patient = visit
    prom = _finished(store, kb, exam, patient, "lefs", LEFS)
    with store.engine.connect() as conn:
        rows = conn.execute(select(audit_events.c.action, audit_events.c.agent,
                                   audit_events.c.patient_id, audit_events.c.address)
                            .where(audit_events.c.resource == f"QuestionnaireResponse/{prom.id}")
                            ).all()
    assert [r.action for r in rows] == ["C", "U", "U"]
    assert {(r.agent, r.patient_id, r.address) for r in rows} == {("ann", patient.id,
                                                                    "10.0.0.7")}
