"""Properties that must hold for every exam, not just the vignettes: any red flag makes
the urgency non-routine and leads the referrals; an unanswered test never counts
against a condition; the result never depends on anything but the answers."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.core import answers
from plugin.core.questionnaire import Form, Item, Quantity
from plugin.decision import assessment, facts

RED_FLAG_ANSWERS = {f"red-flags.{n}" for n in (
    "saddle-numbness", "bladder-dysfunction", "bowel-incontinence", "sexual-dysfunction",
    "bilateral-leg-symptoms", "progressive-weakness", "fever", "cancer-history", "weight-loss",
    "significant-trauma", "immunosuppression-ivdu", "night-pain")}


def _value(item: Item) -> st.SearchStrategy[Any]:
    if item.type == "boolean":
        return st.booleans()
    if item.type == "integer":
        return st.integers(int(item.min_value or 0), int(item.max_value or 20))
    if item.type == "quantity":
        return st.builds(lambda v, u: {"value": v, "unit": u}, st.integers(0, 50),
                         st.sampled_from(item.unit_options or ("wk",)))
    codes = [o.code for o in item.options]
    if item.repeats:  # an exclusive option ("None") is only ever given alone
        alone = [[o.code] for o in item.options if o.exclusive]
        together = [o.code for o in item.options if not o.exclusive]
        return st.lists(st.sampled_from(together), min_size=1, max_size=3, unique=True) | (
            st.sampled_from(alone) if alone else st.nothing())
    return st.sampled_from(codes)


@st.composite
def exams(draw: Any, form: Form) -> answers.Answers:
    """A random valid exam: any subset of questions, any valid answers, enableWhen kept."""
    items = [i for i in form.answerable if i.type in ("boolean", "integer", "quantity", "choice")]
    chosen = draw(st.lists(st.sampled_from(items), unique_by=lambda i: i.link_id, max_size=60))
    plain = {i.link_id: draw(_value(i)) for i in chosen}
    loaded = answers.load_plain(form, {k: v for k, v in plain.items()
                                       if not form.index[k].enable_when})
    for item in chosen:  # questions that depend on another answer, only when enabled
        if item.enable_when and answers.enabled(form, loaded, item):
            plain_now = {k: v for k, v in plain.items()
                         if not form.index[k].enable_when or k == item.link_id}
            loaded = answers.load_plain(form, plain_now)
    return loaded


def _settings() -> Any:
    return settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def test_any_red_flag_means_never_routine(kb, form) -> None:
    @_settings()
    @given(exams(form), st.sampled_from(sorted(RED_FLAG_ANSWERS)), st.integers(0, 100))
    def check(exam: answers.Answers, flag: str, age: int) -> None:
        merged = {**exam, flag: (True,)}
        result = assessment.assess(kb.decision, facts.from_answers(merged, age=age))
        assert result.urgency != "routine"
        assert result.red_flags
        assert result.referrals and result.referrals[0].priority in ("stat", "urgent")
        if result.urgency == "emergency":
            assert {r.priority for r in result.referrals} == {"stat"}
    check()


def test_severe_weakness_on_either_leg_is_urgent(kb, form) -> None:
    @_settings()
    @given(exams(form), st.sampled_from(["l4", "l5", "s1"]), st.sampled_from(["left", "right"]),
           st.integers(0, 3))
    def check(exam: answers.Answers, root: str, side: str, grade: int) -> None:
        merged = {**exam, f"neuro.power.{root}.{side}": (grade,)}
        result = assessment.assess(kb.decision, facts.from_answers(merged))
        assert result.urgency in ("urgent", "emergency")
        assert "severe-motor-deficit" in {f.definition.id for f in result.red_flags}
    check()


def test_an_unanswered_question_never_argues_against(kb, form) -> None:
    """Dropping an answer can remove evidence, never add an 'against' line from it."""
    @_settings()
    @given(exams(form), st.data())
    def check(exam: answers.Answers, data: Any) -> None:
        if not exam:
            return
        dropped = data.draw(st.sampled_from(sorted(exam)))
        full = assessment.assess(kb.decision, facts.from_answers(exam))
        thinner = assessment.assess(kb.decision, facts.from_answers(
            {k: v for k, v in exam.items() if k != dropped}))
        before = {(c.condition.id, e.finding.id) for c in full.differential for e in c.against}
        for candidate in thinner.differential:
            for line in candidate.against:
                assert all(s[0] != dropped for s in line.finding.sources)
                if (candidate.condition.id, line.finding.id) not in before:
                    # a new 'against' can only come from other answers, never the dropped one
                    assert line.finding.sources
    check()


def test_the_json_is_plain_and_deterministic(kb, form) -> None:
    @_settings()
    @given(exams(form))
    def check(exam: answers.Answers) -> None:
        one = assessment.assess(kb.decision, facts.from_answers(exam)).as_json()
        two = assessment.assess(kb.decision, facts.from_answers(dict(reversed(list(exam.items()))))).as_json()
        assert one == two
        assert one["disclaimer"] and one["knowledge_version"]
        assert not any(isinstance(v, Decimal) for v in _leaves(one))
    check()


def _leaves(node: Any) -> Any:
    if isinstance(node, dict):
        for v in node.values():
            yield from _leaves(v)
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v)
    else:
        yield node


def test_no_lumbar_mri_before_the_radicular_threshold_without_a_red_flag(kb, form) -> None:
    """Whatever else was recorded, a lumbar MRI is suggested before
    MRI_RADICULAR_PERSISTENCE_WEEKS only for a red flag (a surgeon's work-up included)."""
    weeks = kb.decision.thresholds["MRI_RADICULAR_PERSISTENCE_WEEKS"]

    @_settings()
    @given(exams(form), st.integers(0, weeks * 7 - 1))
    def check(exam: answers.Answers, days: int) -> None:
        merged = {**exam, "history.duration": (Quantity(Decimal(days), "d"),)}
        result = assessment.assess(kb.decision, facts.from_answers(merged))
        if not result.red_flags:
            assert "mri-lumbar-spine" not in {r.service.id for r in result.referrals}
    check()


def test_a_spine_surgeon_always_comes_with_a_lumbar_mri_or_one_done(kb, form) -> None:
    surgeon_cases = [  # failed conservative care in stenosis and in radicular pain
        {"history.affected-side": ("bilateral",), "history.relieving": ("sitting",),
         "history.aggravating": ("walking-standing",), "patient.age-years": (72,)},
        {"history.pain-location": ("below-knee",), "history.leg-vs-back": ("leg-worse",),
         "history.aggravating": ("cough-sneeze-strain",), "slr.left.response": ("leg-pain-below-knee",),
         "slr.right.response": ("leg-pain-below-knee",)}]

    @_settings()
    @given(exams(form), st.sampled_from(surgeon_cases), st.integers(12, 60), st.integers(6, 60))
    def check(exam: answers.Answers, case: dict[str, Any], weeks: int, pt: int) -> None:
        merged = {**exam, **case, "history.duration": (Quantity(Decimal(weeks), "wk"),),
                  "history.pt-weeks": (pt,)}
        age = merged.get("patient.age-years", (None,))[0]
        result = assessment.assess(kb.decision, facts.from_answers(merged, age=age))
        services = {r.service.id for r in result.referrals}
        if "spine-surgeon" in services:
            assert "mri-lumbar-spine" in services or "mri-lumbar" in merged.get(
                "history.imaging", ())
    check()
