"""Every write of the record leaves exactly one AuditEvent, appended in the write's own
transaction: naming the user, the network address, the patient, the resource, the
action and the outcome; and a write whose audit cannot be appended changes nothing.
On SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from plugin.adapters import audit, outbox
from plugin.adapters.ehr_http import Result
from plugin.adapters.store import Store
from plugin.adapters.tables import (audit_events, observations as observations_table,
                                   outbox as outbox_table, patients, revisions)
from plugin.core import audit_events as ae
from plugin.record import exams, freeze, observations, signoff, trail
from tests.support.conformance import IndependentValidator, assert_conformant
from tests.support.tablet import ANSWERS, AMENDED

ANN = ae.Actor("alee", "Dr Ann Lee", "7c0b5f43-2f4c-4f61-9d59-4ad0e2b4a001", "clinician")
BY = trail.By(ANN, "10.1.2.3")
NOW = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc)
PATIENT = {"resourceType": "Patient", "name": [{"family": "Silva", "given": ["Ana"]}],
           "birthDate": "1986-03-14", "identifier": [{"system": "urn:mrn", "value": "M-1"}]}
SIGNER = signoff.Signer("Dr Ann Lee", f"Practitioner/{ANN.practitioner_id}")


def _trail(store: Store) -> list[dict]:
    """Every AuditEvent, oldest first."""
    return [json.loads(text) for text in audit.events_since(store.engine, None)]


def _facts(event: dict) -> tuple:
    row = audit.facts(event)
    data = next(e for e in event["entity"] if e["role"]["code"] == "4")
    return (row.agent, row.address, row.patient_id, row.resource, row.action, row.outcome,
            data.get("description"))


def _signed_exam(store: Store, kb, *, ehr_base: str | None = None):
    record = exams.add_patient(store, PATIENT, by=BY)
    exam = exams.begin(store, kb, record, now=NOW, by=BY)
    form = kb.form_for(exam.questionnaire)
    exam, _ = exams.save_draft(store, form, exam, record, expected_version=exam.version,
                               answers=ANSWERS, now=NOW, by=BY)
    exams.sign(store, kb, exam, record, expected_version=exam.version, signer=SIGNER,
               now=NOW, ehr_base=ehr_base, by=BY)
    return record, store.exam(exam.id), form


def test_each_write_leaves_one_event_naming_who_where_whose_what_and_how(store, kb) -> None:
    record = exams.add_patient(store, PATIENT, by=BY)
    assert [_facts(e) for e in _trail(store)] == [
        ("alee", "10.1.2.3", record.id, f"Patient/{record.id}", "C", "0",
         "patient registered")]
    exam = exams.begin(store, kb, record, now=NOW, by=BY)
    form = kb.form_for(exam.questionnaire)
    exam, _ = exams.save_draft(store, form, exam, record, expected_version=exam.version,
                               answers=ANSWERS, now=NOW, by=BY)
    exams.sign(store, kb, exam, record, expected_version=exam.version, signer=SIGNER,
               now=NOW, ehr_base=None, by=BY)
    exam = store.exam(exam.id)
    exam = exams.amend(store, form, exam, record, expected_version=exam.version,
                       reason="re-measured", now=NOW, by=BY)
    exams.cancel_amendment(store, exam, expected_version=exam.version, by=BY)
    exam = store.exam(exam.id)
    exam = exams.amend(store, form, exam, record, expected_version=exam.version,
                       reason="re-measured", now=NOW, by=BY)
    exam, _ = exams.save_draft(store, form, exam, record, expected_version=exam.version,
                               answers=AMENDED, now=NOW, by=BY)
    exams.sign(store, kb, exam, record, expected_version=exam.version, signer=SIGNER,
               now=NOW, ehr_base=None, by=BY)
    qr = f"QuestionnaireResponse/{exam.id}"
    who = ("alee", "10.1.2.3", record.id)
    assert [_facts(e) for e in _trail(store)][1:] == [
        (*who, qr, "C", "0", "exam begun"),
        (*who, qr, "U", "0", "draft saved"),
        (*who, f"{qr}/_history/1", "U", "0", "signed"),
        (*who, qr, "U", "0", "amendment begun"),
        (*who, qr, "U", "0", "amendment cancelled"),
        (*who, qr, "U", "0", "amendment begun"),
        (*who, qr, "U", "0", "draft saved"),
        (*who, f"{qr}/_history/2", "U", "0", "amendment signed"),
    ]
    user = _trail(store)[0]["agent"][0]
    assert user["requestor"] is True and user["who"]["display"] == "Dr Ann Lee"
    assert user["who"]["reference"] == f"Practitioner/{ANN.practitioner_id}"


def test_a_refused_write_leaves_no_event(store, kb) -> None:
    record, exam, form = _signed_exam(store, kb)
    before = len(_trail(store))
    with pytest.raises(Exception):  # stale version: a ConflictError, nothing written
        exams.amend(store, form, exam, record, expected_version=exam.version - 1,
                    reason="late", now=NOW, by=BY)
    assert len(_trail(store)) == before


def _count(store: Store, table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_write_whose_audit_cannot_be_appended_changes_nothing(store, kb) -> None:
    record, exam, form = _signed_exam(store, kb)
    taken = _trail(store)[0]  # appending an event with a used id fails in the database

    def broken(_):
        return [taken]

    tables = (patients, revisions, audit_events, observations_table)
    counts = {t.name: _count(store, t) for t in tables}
    assert counts["observations"] > 0  # the first signature stored its Observations
    with pytest.raises(audit.AuditUnavailable):
        store.add_patient(PATIENT, audit=broken)
    with pytest.raises(audit.AuditUnavailable):
        store.begin_amendment(exam.id, expected_version=exam.version, reason="r",
                              draft={"resourceType": "QuestionnaireResponse"}, audit=broken)
    assert store.exam(exam.id) == exam  # not amending: the write was rolled back
    amending = exams.amend(store, form, exam, record, expected_version=exam.version,
                           reason="re-measured", now=NOW, by=BY)
    with pytest.raises(audit.AuditUnavailable):
        store.save_draft(amending.id, expected_version=amending.version, answers=AMENDED,
                         draft={"resourceType": "QuestionnaireResponse"}, audit=broken)
    assert store.exam(exam.id) == amending
    signed = signoff.sign(kb, AMENDED, record_id=exam.id, patient=record.resource,
                          signer=SIGNER, signed_at=NOW, revision=2, reason="re-measured")
    with pytest.raises(audit.AuditUnavailable):
        store.sign(exam.id, expected_version=amending.version, answers=AMENDED,
                   response=signed.response, provenance=signed.provenance,
                   signed_by="Dr Ann Lee", signed_at=NOW, audit=broken,
                   delivery={"resourceType": "Bundle", "type": "transaction"},
                   observations=observations.of_revision(
                       kb, exam_id=exam.id, patient_id=record.id, number=2,
                       response=signed.response, signed_at=NOW))
    assert store.exam(exam.id) == amending and len(store.revisions(exam.id)) == 1
    assert _count(store, outbox_table) == 0  # no delivery queued either
    assert {t.name: _count(store, t) for t in tables} == \
        {**counts, "audit_events": counts["audit_events"] + 1}  # the amendment's event


def test_send_again_and_choosing_the_ehr_patient_are_audited(store, kb) -> None:
    record, exam, _ = _signed_exam(store, kb, ehr_base="https://ehr.example/fhir")
    freeze.render_pending(store, worker_id="renderer", lease_seconds=60)  # delivery waits
    before = len(_trail(store))
    assert exams.send_again(store, exam.id, by=BY) is None  # pending: nothing to do
    assert len(_trail(store)) == before  # and nothing audited
    [job] = outbox.claim(store, "w", 5, 30)
    assert outbox.failed(store, job, "HTTP 422", retryable=False) == "dead"
    assert exams.send_again(store, exam.id, by=BY).state == "pending"
    [job] = outbox.claim(store, "w", 5, 30)
    assert outbox.held(store, job, Result(delivered=False, hold="confirm the patient"))
    assert exams.choose_ehr_patient(store, exam.id, "a-1", by=BY).state == "pending"
    qr = f"QuestionnaireResponse/{exam.id}"
    assert [_facts(e) for e in _trail(store)][before:] == [
        ("alee", "10.1.2.3", record.id, qr, "U", "0", "delivery queued again"),
        ("alee", "10.1.2.3", record.id, qr, "U", "0", "EHR patient chosen for delivery")]


def test_the_command_line_is_named_by_the_client_agent_alone(store, kb) -> None:
    record = exams.add_patient(store, PATIENT, by=trail.COMMAND_LINE)
    [event] = _trail(store)
    assert audit.facts(event).agent is None and audit.facts(event).patient_id == record.id
    [client] = [a for a in event["agent"] if a["requestor"]]
    assert client["who"] == {"display": "command line"}


def test_write_events_pass_both_validators(sqlite_store, kb) -> None:
    _signed_exam(sqlite_store, kb)
    with IndependentValidator() as validator:
        for event in _trail(sqlite_store):
            assert_conformant(validator, event)
