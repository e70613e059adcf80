"""Findings in three-valued logic: present, absent, or not assessed, per leg."""
from __future__ import annotations

from typing import Any

import pytest

from plugin.core import answers
from plugin.decision import facts
from plugin.decision.findings import Findings


def _findings(kb: Any, form: Any, plain: dict[str, Any], age: int | None = None) -> Findings:
    return Findings(kb.decision, facts.from_answers(answers.load_plain(form, plain), age=age))


@pytest.mark.parametrize(("plain", "truth"), [
    ({"slr.left.response": "leg-pain-below-knee"}, True),
    ({"slr.left.response": "leg-pain-above-knee"}, True),
    ({"slr.left.response": "hamstring-stretch-only", "slr.left.onset-angle": 35}, False),
    ({"slr.left.onset-angle": 35}, None),  # an angle alone is never a positive SLR
    ({}, None),
])
def test_slr_positivity_follows_the_response_not_the_angle(kb, form, plain, truth) -> None:
    assert _findings(kb, form, {"history.affected-side": "left", **plain}).truth("slr-positive") is truth


def test_not_done_is_not_assessed_never_negative(kb, form) -> None:
    base = {"history.affected-side": "left", "slr.left.response": "leg-pain-below-knee"}
    assert _findings(kb, form, {**base, "slr.left.sensitising": "not-done"}).truth(
        "slr-positive-sensitised") is None
    assert _findings(kb, form, {**base, "slr.left.sensitising": "no-change"}).truth(
        "slr-positive-sensitised") is False
    assert _findings(kb, form, {**base, "slr.left.sensitising": "increased"}).truth(
        "slr-positive-sensitised") is True


def test_the_symptomatic_side_decides(kb, form) -> None:
    plain = {"hamstring-tests.modified-bent-knee-stretch.left": "negative",
             "hamstring-tests.modified-bent-knee-stretch.right": "positive"}
    on_left = _findings(kb, form, {"history.affected-side": "left", **plain})
    assert on_left.truth("modified-bent-knee-stretch-positive") is False
    on_right = _findings(kb, form, {"history.affected-side": "right", **plain})
    assert on_right.get("modified-bent-knee-stretch-positive").sides == ("right",)
    both = _findings(kb, form, {"history.affected-side": "bilateral", **plain})
    assert both.truth("modified-bent-knee-stretch-positive") is True
    unknown_side = _findings(kb, form, {"hamstring-tests.modified-bent-knee-stretch.left": "negative"})
    assert unknown_side.truth("modified-bent-knee-stretch-positive") is False  # what was tested
    untested = _findings(kb, form, {"history.affected-side": "right",
                                    "hamstring-tests.modified-bent-knee-stretch.left": "negative"})
    assert untested.truth("modified-bent-knee-stretch-positive") is None


def test_crossed_slr_belongs_to_the_leg_that_hurts(kb, form) -> None:
    # raising the right leg reproduces the left leg's pain: a crossed SLR of the left leg
    found = _findings(kb, form, {"history.affected-side": "left", "slr.right.crossed-pain": True})
    assert found.get("crossed-slr-positive").sides == ("left",)


def test_clusters_need_enough_known_parts(kb, form) -> None:
    sij = {f"sij-tests.{t}": "positive" for t in ("distraction", "thigh-thrust", "compression")}
    assert _findings(kb, form, sij).truth("sij-provocation-cluster") is True
    centralising = _findings(kb, form, {**sij, "sij-tests.centralisation": True})
    assert centralising.truth("sij-provocation-cluster") is False  # excluded
    one = _findings(kb, form, {"sij-tests.distraction": "positive"})
    assert one.truth("sij-provocation-cluster") is None  # others not done: not assessed
    negative = {f"sij-tests.{t}": "negative" for t in (
        "distraction", "thigh-thrust", "compression", "sacral-thrust", "gaenslen.left", "gaenslen.right")}
    assert _findings(kb, form, negative).truth("sij-provocation-cluster") is False


@pytest.mark.parametrize(("grades", "truth"), [
    ({"neuro.power.s1.left": 4, "neuro.reflex.ankle.left": "absent"}, True),
    ({"neuro.power.s1.left": 4, "neuro.reflex.ankle.left": "normal",
      "neuro.sensation.s1.left": "normal"}, False),
    ({"neuro.power.s1.left": 4}, None),
])
def test_a_root_pattern_needs_two_concordant_signs(kb, form, grades, truth) -> None:
    found = _findings(kb, form, {"history.affected-side": "left", **grades})
    assert found.truth("s1-pattern") is truth


def test_duration_thresholds_compare_across_units(kb, form) -> None:
    eight_weeks = _findings(kb, form, {"history.duration": {"value": 2, "unit": "mo"}})
    assert eight_weeks.truth("radicular-symptoms-persisting") is True
    ten_days = _findings(kb, form, {"history.duration": {"value": 10, "unit": "d"}})
    assert ten_days.truth("radicular-symptoms-persisting") is False
    assert _findings(kb, form, {}).truth("radicular-symptoms-persisting") is None


def test_age_comes_from_the_patient_when_not_answered(kb, form) -> None:
    assert _findings(kb, form, {}, age=75).truth("age-over-70") is True
    assert _findings(kb, form, {"patient.age-years": 40}, age=75).truth("age-over-70") is False
    assert _findings(kb, form, {}).truth("age-over-70") is None
