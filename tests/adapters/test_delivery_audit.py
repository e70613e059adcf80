"""Delivery to the EHR leaves one Export AuditEvent per attempt's outcome, appended with
the outcome it records: delivered (0), refused for good (8, with the EHR's words)."""
from __future__ import annotations

import json

import pytest

from plugin.adapters import audit
from tests.adapters.test_delivery import fhir_server  # noqa: F401 (a fixture)
from tests.adapters.test_delivery_strict import EHR_RUTH, queue_typed, work
from tests.support.conformance import IndependentValidator, assert_conformant


@pytest.fixture()
def server(fhir_server):  # noqa: F811
    fhir_server.reset()
    fhir_server.seed(EHR_RUTH)
    return fhir_server


def _exports(store) -> list[dict]:
    return [e for e in map(json.loads, audit.events_since(store.engine, None))
            if e["type"]["code"] == "110106"]


def test_a_delivery_and_a_refusal_each_leave_one_export_event(sqlite_store, kb,
                                                              server) -> None:
    delivered_id, _ = queue_typed(sqlite_store, kb)
    assert work(sqlite_store, server.url)["delivered"] == 1
    refused_id, _ = queue_typed(sqlite_store, kb)
    server.faults({"status": 422, "code": "code-invalid",
                   "text": "Observation.code: unknown code system"})
    assert work(sqlite_store, server.url)["dead"] == 1
    first, second = _exports(sqlite_store)
    patient_of = {e: sqlite_store.exam(e).patient_id for e in (delivered_id, refused_id)}
    for event, exam_id, outcome in ((first, delivered_id, "0"), (second, refused_id, "8")):
        facts = audit.facts(event)
        assert (facts.action, facts.outcome, facts.patient_id, facts.resource) == \
            ("R", outcome, patient_of[exam_id], f"QuestionnaireResponse/{exam_id}")
        destination = next(a for a in event["agent"] if not a["requestor"])
        assert destination["who"]["display"] == server.url
    assert "unknown code system" in second["outcomeDesc"]
    with IndependentValidator() as validator:
        for event in (first, second):
            assert_conformant(validator, event)


def test_a_delivery_held_for_a_person_is_a_minor_failure_in_the_trail(sqlite_store, kb,
                                                                      server) -> None:
    exam_id, _ = queue_typed(sqlite_store, kb, mrn="MRN-8")  # the EHR knows no MRN-8
    assert work(sqlite_store, server.url)["held"] == 1
    [event] = _exports(sqlite_store)
    facts = audit.facts(event)
    assert (facts.outcome, facts.resource) == ("4", f"QuestionnaireResponse/{exam_id}")
    assert event["outcomeDesc"]
