"""A follow-up visit begins in a signed exam's episode (K3): a draft of the follow-up
Questionnaire carrying the history from the episode's latest signed visit, never a
finding to re-measure; it signs like any exam, and its findings are assessed by the
same engine. On SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt

import pytest

from plugin.core import answers
from plugin.errors import InputError
from plugin.record import exams, pipeline
from tests.record.test_write_audit import BY, PATIENT, SIGNER, _facts, _trail

MARCH = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
APRIL = dt.datetime(2026, 4, 6, 9, 0, tzinfo=dt.timezone.utc)
MAY = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.timezone.utc)
INITIAL = {"history.affected-side": "left", "history.onset": "sudden",
           "history.mechanism": "sprinting", "history.imaging": ["ultrasound"],
           "history.pt-weeks": 2, "slr.left.onset-angle": 60, "slr.left.response":
           "hamstring-stretch-only", "palpation.hamstring-mid.left": "tender",
           "red-flags.fever": False}
FOLLOW_UP = "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-follow-up|1.0.0"


def _save_and_sign(store, kb, exam, record, answers, when):
    form = kb.form_for(exam.questionnaire)
    exam, checked = exams.save_draft(store, form, exam, record, expected_version=exam.version,
                                     answers=answers, now=when, by=BY)
    assert not checked.errors, checked.errors
    exams.sign(store, kb, exam, record, expected_version=exam.version, signer=SIGNER,
               now=when, ehr_base=None, by=BY)
    return store.exam(exam.id)


@pytest.fixture()
def initial(store, kb):
    record = exams.add_patient(store, PATIENT, by=BY)
    exam = exams.begin(store, kb, record, now=MARCH, by=BY)
    return record, _save_and_sign(store, kb, exam, record, INITIAL, MARCH)


def _carried_from(exam) -> dict[str, str]:
    return {k: v["identifier"]["value"] for k, v in exams.carried_answers(exam).items()}


def test_a_follow_up_carries_the_history_and_never_a_finding(store, kb, initial) -> None:
    record, first = initial
    follow_up = exams.begin_follow_up(store, kb, first, now=APRIL, by=BY)
    assert follow_up.questionnaire == FOLLOW_UP and follow_up.episode_id == first.id
    assert follow_up.state == "draft" and follow_up.id != first.id
    # the story and the side, carried and marked with their source; the age prefilled;
    # no finding (SLR, palpation), no red flag, nothing that changes with time (pt-weeks)
    assert dict(follow_up.answers) == {"patient.age-years": 40,
                                       "history.affected-side": "left",
                                       "history.imaging": ["ultrasound"]}
    assert _carried_from(follow_up) == {"history.affected-side": first.id,
                                        "history.imaging": first.id}
    assert follow_up.draft["questionnaire"] == FOLLOW_UP
    assert [e.id for e in store.episode_exams(first.id)] == [first.id, follow_up.id]


def test_a_second_tap_resumes_the_follow_up_begun(store, kb, initial) -> None:
    _, first = initial
    begun = exams.begin_follow_up(store, kb, first, now=APRIL, by=BY)
    assert exams.begin_follow_up(store, kb, first, now=APRIL, by=BY).id == begun.id
    assert len(store.episode_exams(first.id)) == 2


def test_an_unsigned_exam_cannot_be_followed_up(store, kb) -> None:
    record = exams.add_patient(store, PATIENT, by=BY)
    draft = exams.begin(store, kb, record, now=MARCH, by=BY)
    with pytest.raises(InputError, match="Only a signed exam can be followed up"):
        exams.begin_follow_up(store, kb, draft, now=APRIL, by=BY)
    assert [e.id for e in store.exams_for(record.id)] == [draft.id]


def test_the_next_visit_carries_from_the_episodes_latest_signed_visit(store, kb,
                                                                      initial) -> None:
    record, first = initial
    second = exams.begin_follow_up(store, kb, first, now=APRIL, by=BY)
    second = _save_and_sign(store, kb, second, record, {
        **second.answers, "history.affected-side": "bilateral", "pain.current": 3,
        "neuro.since-last-visit": "unchanged", "follow-up.global-rating": "improving"}, APRIL)
    # a new complaint in between is its own episode: it does not feed this one
    other = exams.begin(store, kb, record, now=APRIL, by=BY)
    _save_and_sign(store, kb, other, record, {"history.affected-side": "right"}, APRIL)
    third = exams.begin_follow_up(store, kb, second, now=MAY, by=BY)  # from the follow-up
    assert third.episode_id == first.id
    assert third.answers["history.affected-side"] == "bilateral"
    assert _carried_from(third)["history.affected-side"] == second.id
    assert [e.id for e in store.episode_exams(first.id)] == [first.id, second.id, third.id]


def test_a_signed_follow_up_is_a_completed_record_of_the_follow_up_form(store, kb,
                                                                        initial) -> None:
    record, first = initial
    follow_up = exams.begin_follow_up(store, kb, first, now=APRIL, by=BY)
    signed = _save_and_sign(store, kb, follow_up, record, {
        **follow_up.answers, "slr.left.onset-angle": 45, "slr.left.response":
        "leg-pain-below-knee", "neuro.since-last-visit": "changed",
        "neuro.reflex.ankle.left": "reduced", "follow-up.global-rating": "worse",
        "follow-up.note": "Now radiating below the knee"}, APRIL)
    revision = store.revision(signed.id, 1)
    assert revision.status == "completed"
    assert revision.response["questionnaire"] == FOLLOW_UP
    assert revision.answers["follow-up.note"] == "Now radiating below the knee"
    # the engine speaks the shared linkIds: a positive SLR at a follow-up is radicular
    assessed = pipeline.assess_answers(kb, answers.load_plain(kb.form_for(FOLLOW_UP),
                                                              dict(revision.answers)))
    assert assessed.differential[0].condition.id == "lumbar-radiculopathy"
    # and a new red flag at a follow-up escalates as at a first visit
    flagged = pipeline.red_flag_alert(kb, answers.load_plain(kb.form_for(FOLLOW_UP), {
        **revision.answers, "red-flags.bladder-dysfunction": True}))
    assert flagged["urgency"] == "emergency"


def test_a_follow_up_is_amended_like_any_exam(store, kb, initial) -> None:
    record, first = initial
    follow_up = exams.begin_follow_up(store, kb, first, now=APRIL, by=BY)
    signed = _save_and_sign(store, kb, follow_up, record, {
        **follow_up.answers, "pain.current": 4, "follow-up.global-rating": "unchanged"}, APRIL)
    form = kb.form_for(signed.questionnaire)
    reopened = exams.amend(store, form, signed, record, expected_version=signed.version,
                           reason="Rating corrected", now=MAY, by=BY)
    amended = _save_and_sign(store, kb, reopened, record, {
        **signed.answers, "follow-up.global-rating": "improving"}, MAY)
    revision = store.revision(amended.id, 2)
    assert (revision.status, revision.reason) == ("amended", "Rating corrected")
    assert revision.response["questionnaire"] == FOLLOW_UP
    assert revision.answers["follow-up.global-rating"] == "improving"
    assert amended.episode_id == first.id


def test_beginning_a_follow_up_is_audited_with_the_history_it_read(store, kb, initial) -> None:
    record, first = initial
    before = len(_trail(store))
    follow_up = exams.begin_follow_up(store, kb, first, now=APRIL, by=BY)
    events = [_facts(e) for e in _trail(store)[before:]]
    assert ("alee", "10.1.2.3", record.id, f"QuestionnaireResponse/{follow_up.id}", "C", "0",
            "follow-up begun") in events
    assert ("alee", "10.1.2.3", record.id, f"QuestionnaireResponse/{first.id}/_history/1",
            "R", "0", "history carried to a new exam") in events
    assert len(events) == 2
