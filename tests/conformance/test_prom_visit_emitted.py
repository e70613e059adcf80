"""The scored QuestionnaireResponses a visit's PROMs hand the signature (``record.proms
.completed``, contract K1) pass both validators, for every shipped instrument, in
progress and finished."""
from __future__ import annotations

import datetime as dt

import pytest

from plugin.core import prom_answers
from plugin.record import proms
from plugin.record.trail import COMMAND_LINE
from tests.adapters.test_store import ANA, QUESTIONNAIRE, draft
from tests.support.conformance import IndependentValidator, assert_conformant

NOW = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def validator():
    with IndependentValidator() as v:
        yield v


def _answers(instrument) -> dict:
    """Every question answered: the last option of a choice, 7 for a rating, a text."""
    found = {}
    for q in prom_answers.questions(instrument):
        found[q.link_id] = (q.options[-1][0] if q.options else 7 if q.type == "integer"
                            else "Climbing stairs")
    return found


def test_each_instruments_visit_response_validates(validator, kb, sqlite_store) -> None:
    patient = sqlite_store.add_patient(ANA)
    exam = sqlite_store.create_exam(patient.id, QUESTIONNAIRE, answers={}, draft=draft({}))
    for name in ("lefs", "psfs", "keele-start-back"):
        prom = proms.add(sqlite_store, kb, exam, patient, name, now=NOW, by=COMMAND_LINE)
        assert_conformant(validator, dict(prom.response))  # in progress, unanswered
        prom, _ = proms.save(sqlite_store, kb, prom, patient, expected_version=1,
                             answers=_answers(kb.instruments[name]), now=NOW, by=COMMAND_LINE)
        assert_conformant(validator, dict(prom.response))
        proms.finish(sqlite_store, kb, prom, patient, expected_version=2, now=NOW,
                     by=COMMAND_LINE)
    found = proms.completed(sqlite_store, kb, exam.id)
    assert len(found) == 3
    for response in found:
        assert_conformant(validator, response)
