"""``python -m plugin report decisions``: how clinicians decided on the suggestions,
counted over each record's latest signed revision, without patient data."""
from __future__ import annotations

import json

import pytest

from plugin.adapters.store import Store
from plugin.record import exams
from tests.record.test_impression import PLAN, _sign
from tests.record.test_write_audit import BY, NOW, PATIENT
from tests.support.cli import run
from tests.support.tablet import AMENDED, ANSWERS

DECLINED = {"referrals": {"physiotherapy": {"order": False,
                                            "reason": "Already sees a physiotherapist."}}}


@pytest.fixture()
def database(tmp_path, kb):
    url = f"sqlite:///{tmp_path / 'exam.sqlite3'}"
    store = Store(url)
    store.upgrade()
    ids = []
    patient = exams.add_patient(store, PATIENT, by=BY)  # one patient, three records
    for plan in (PLAN, DECLINED, None):
        exam = exams.begin(store, kb, patient, now=NOW, by=BY)
        form = kb.form_for(exam.questionnaire)
        exam, _ = exams.save_draft(store, form, exam, patient, expected_version=exam.version,
                                   answers=ANSWERS, now=NOW, by=BY)
        if plan is not None:
            exam = exams.save_impression(store, kb, exam, expected_version=exam.version,
                                         impression=plan, by=BY)
        exam = _sign(store, kb, exam, patient)
        ids.append(exam.id)
    # the first record amended: its plan changed to the declined one; counted once, as now
    exam = exams.amend(store, form, store.exam(ids[0]), patient, expected_version=store.exam(
        ids[0]).version, reason="re-measured", now=NOW, by=BY)
    exam = exams.save_impression(store, kb, exam, expected_version=exam.version,
                                 impression=DECLINED, by=BY)
    exam, _ = exams.save_draft(store, form, exam, patient, expected_version=exam.version,
                               answers=AMENDED, now=NOW, by=BY)
    _sign(store, kb, exam, patient)
    store.dispose()
    return url, ids


def test_the_report_counts_each_records_latest_decision(database) -> None:
    url, ids = database
    result = run("report", "decisions", "--format", "json", env={"PLUGIN_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["records"] == 3 and report["with_impression"] == 2
    assert report["diagnosis"] == {"lumbar-radiculopathy": {
        "display": "Lumbar radiculopathy (disc-related sciatica)",
        "accepted": 0, "other-suggestion": 0, "changed": 0, "none": 3}}
    assert report["referrals"] == {"physiotherapy": {
        "display": "Physiotherapy", "accepted": 0, "changed": 0, "dropped": 2,
        "added": 0, "undecided": 1, "with_reason": 2}}
    for private in (*ids, PATIENT["name"][0]["family"], "Already sees"):
        assert private not in result.stdout


def test_the_reasons_are_listed_only_when_asked_for(database) -> None:
    url, _ = database
    result = run("report", "decisions", "--format", "json", "--with-reasons",
                 env={"PLUGIN_DATABASE_URL": url})
    assert json.loads(result.stdout)["referrals"]["physiotherapy"]["reasons"] == {
        "Already sees a physiotherapist.": 2}
    text = run("report", "decisions", env={"PLUGIN_DATABASE_URL": url})
    assert text.returncode == 0 and "Physiotherapy: accepted 0, changed 0, " \
        "dropped 2, added 0, undecided 1 (with a reason: 2)" in text.stdout


def test_bad_input_is_a_message_and_a_non_zero_exit(database) -> None:
    result = run("report", "decisions", "--since", "yesterday",
                 env={"PLUGIN_DATABASE_URL": database[0]})
    assert (result.returncode, result.stdout) == (2, "")
    assert "is not an ISO date" in result.stderr
    result = run("report", "decisions", env={"PLUGIN_DATABASE_URL": "not a url"})
    assert result.returncode == 4 and result.stderr.startswith("error:")
