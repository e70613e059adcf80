"""The patient handout under a red flag, for any exam (hypothesis): whatever else was
recorded, an ``emergency`` handout says only go to A&E now, why, and the warning signs;
an ``urgent`` one leads with "seen within days"; neither carries an exercise, the
"most people get better" reassurance or a routine follow-up. Rendered as HTML (the
PDF prints the same template: tests/adapters/test_documents.py reads real PDFs)."""
from __future__ import annotations

import html
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.adapters.documents import render
from plugin.core import answers
from plugin.decision import assessment, facts
from tests.decision.test_properties import RED_FLAG_ANSWERS, exams

#: Answers that raise each red flag (the cauda equina and serious-pathology questions,
#: severe weakness on either leg, and the avulsion picture: proximal tenderness + a pop).
RAISERS = [{flag: (True,)} for flag in sorted(RED_FLAG_ANSWERS)] + [
    {"neuro.power.l5.left": (2,)}, {"neuro.power.s1.right": (3,)},
    {"history.onset": ("sudden",), "history.pop": (True,),
     "palpation.ischial-tuberosity.right": ("tender",)},
    {"history.onset": ("sudden",), "history.mechanism": ("forced-hip-flexion-knee-extended",),
     "palpation.hamstring-proximal.left": ("reproduces-familiar-pain",)},
]
#: Words of routine care and reassurance that must never reach a red-flag handout.
DELAYING = ("exercise", "get better", "most people", "when to come back", "review progress",
            "what we think is going on")


def _text(page: str) -> str:
    body = page[page.index("<main") if "<main" in page else page.index("<body"):]
    body = re.sub(r"<footer.*?</footer>", " ", body, flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", body))
    return " ".join(text.replace("\xa0", " ").replace("•", " ").split())


def _routine_lines(kb: Any) -> set[str]:
    """Every exercise and follow-up line the handout data holds."""
    lines = set(kb.handouts.general_come_back)
    for handout in kb.handouts.conditions.values():
        lines |= set(handout.come_back) | {handout.what}
        for exercise in handout.exercises:
            lines |= {exercise.name, exercise.dose, *exercise.steps}
    return lines


def test_a_red_flag_handout_never_carries_exercise_or_routine_follow_up(kb, form) -> None:
    routine = _routine_lines(kb)

    @settings(max_examples=120, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(exams(form), st.sampled_from(RAISERS), st.integers(0, 100))
    def check(exam: answers.Answers, raise_: dict[str, Any], age: int) -> None:
        result = assessment.assess(kb.decision, facts.from_answers({**exam, **raise_}, age=age))
        assert result.urgency in ("emergency", "urgent")
        text = _text(render.handout_html(kb, result.as_json()))
        lead = kb.handouts.urgency[result.urgency]
        assert text.startswith(lead.lead), text[:120]
        lowered = text.lower()
        for word in DELAYING:
            assert word not in lowered, word
        for line in routine:
            assert line not in text, line
        if result.urgency == "emergency":  # only: go now, why, the signs
            why = [kb.handouts.red_flags[f.definition.id].why for f in result.red_flags
                   if f.definition.urgency == "emergency"]
            allowed = " ".join([lead.lead, *dict.fromkeys(why), lead.signs_title,
                                *kb.handouts.emergency.signs])
            assert text == allowed
    check()


def test_an_urgent_handout_prints_all_of_its_data(kb) -> None:
    """Later features may add to the red-flag content, never drop it: every line of
    every raised flag prints, in order (lead, why, arranged, go-now signs)."""
    result = assessment.assess(kb.decision, facts.from_answers({
        "red-flags.fever": (True,), "neuro.power.l5.left": (2,),
        "history.onset": ("sudden",), "history.pop": (True,),
        "palpation.ischial-tuberosity.left": ("tender",)}))
    assert result.urgency == "urgent"
    assert {f.definition.id for f in result.red_flags} == {
        "serious-pathology", "severe-motor-deficit", "proximal-hamstring-avulsion"}
    text = _text(render.handout_html(kb, result.as_json()))
    urgent = kb.handouts.urgency["urgent"]
    for flag in result.red_flags:
        words = kb.handouts.red_flags[flag.definition.id]
        for line in (words.why, *words.arranged, *words.until_seen, *words.go_now):
            assert line in text, line
    for sign in kb.handouts.emergency.signs:  # spine flags: the cauda equina signs too
        assert sign in text
    order = [urgent.lead, urgent.arranged_title, urgent.signs_title, kb.handouts.general_note]
    assert [text.index(x) for x in order] == sorted(text.index(x) for x in order)


def test_a_routine_handout_is_unchanged_by_the_red_flag_content(kb) -> None:
    result = assessment.assess(kb.decision, facts.from_answers({
        "history.onset": ("sudden",), "history.mechanism": ("sprinting",),
        "palpation.hamstring-mid.left": ("tender",), "history.affected-side": ("left",),
        "hamstring-tests.resisted-knee-flexion.left": ("painful",)}))
    assert result.urgency == "routine"
    text = _text(render.handout_html(kb, result.as_json()))
    assert "What we think is going on" in text and "first exercises" in text
    for lead in kb.handouts.urgency.values():
        assert lead.lead not in text


def test_a_plan_that_drops_the_urgent_referral_keeps_the_red_flag_handout(kb, form) -> None:
    """The handout follows the clinician's plan, never away from urgent care: with a
    routine working diagnosis and every suggested referral dropped, a red-flag exam's
    handout is the same red-flag handout, word for word."""
    from plugin.decision import impression

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(exams(form), st.sampled_from(RAISERS), st.integers(0, 100),
           st.sampled_from([c.id for c in kb.decision.conditions]))
    def check(exam: answers.Answers, raise_: dict[str, Any], age: int, condition: str) -> None:
        result = assessment.assess(kb.decision, facts.from_answers({**exam, **raise_}, age=age))
        plan = impression.load(kb.decision, {
            "diagnosis": {"condition": condition, "status": "confirmed"},
            "referrals": {r.service.id: {"order": False, "reason": "declined"}
                          for r in result.referrals}})
        suggested = render.handout_html(kb, result.as_json())
        followed = render.handout_html(kb, result.as_json(), impression=plan)
        assert _text(followed) == _text(suggested)
        assert _text(followed).startswith(kb.handouts.urgency[result.urgency].lead)
    check()


def test_a_routine_handout_explains_the_clinicians_working_diagnosis(kb) -> None:
    from plugin.decision import impression
    result = assessment.assess(kb.decision, facts.from_answers({
        "history.onset": ("sudden",), "history.pop": (False,)}, age=30))
    assert result.urgency == "routine"
    plan = impression.load(kb.decision, {"diagnosis": {"condition": "sacroiliac-joint-pain",
                                                       "status": "provisional"}})
    text = _text(render.handout_html(kb, result.as_json(), impression=plan))
    assert kb.handouts.for_condition("sacroiliac-joint-pain").what in text
