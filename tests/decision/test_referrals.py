"""Referral rules that depend on what else is suggested or was already tried: a spine
surgeon comes with the lumbar MRI the surgeon needs (never before the radicular MRI
threshold without a red flag), and physiotherapy after weeks of structured loading is a
review of the programme, not a fresh start (shared/clinical.md section 5)."""
from __future__ import annotations

from typing import Any

from plugin import knowledge
from plugin.config import DEFAULTS
from plugin.decision import assessment, facts

#: A 74-year-old with bilateral leg pain on walking, eased by sitting and bending
#: forward, after ten weeks of physiotherapy, for five months.
STENOSIS = {"history.affected-side": ("bilateral",), "history.onset": ("gradual",),
            "history.duration": ({"value": 20, "unit": "wk"},),
            "history.pain-location": ("posterior-thigh-mid", "below-knee"),
            "history.aggravating": ("walking-standing",),
            "history.relieving": ("sitting", "bending-forward"), "history.pt-weeks": (10,)}
#: Disc radiculopathy for 14 weeks after 10 weeks of physiotherapy, no imaging yet.
RADICULAR = {"history.affected-side": ("left",), "history.onset": ("gradual",),
             "history.duration": ({"value": 14, "unit": "wk"},),
             "history.pain-location": ("low-back", "below-knee", "foot"),
             "history.leg-vs-back": ("leg-worse",), "history.aggravating": ("cough-sneeze-strain",),
             "history.paraesthesia": ("below-knee",), "history.pt-weeks": (10,),
             "slr.left.response": ("leg-pain-below-knee",), "slr.left.sensitising": ("increased",),
             "neuro.reflex.ankle.left": ("reduced",), "neuro.sensation.s1.left": ("reduced",)}


def _quantity(value: Any) -> Any:
    if isinstance(value, dict):
        from decimal import Decimal

        from plugin.core.questionnaire import Quantity
        return Quantity(Decimal(value["value"]), value["unit"])
    return value


def _assess(decision: Any, answers: dict[str, tuple[Any, ...]], age: int = 50) -> Any:
    plain = {k: tuple(_quantity(v) for v in vs) for k, vs in answers.items()}
    return assessment.assess(decision, facts.from_answers(plain, age=age))


def _services(result: Any) -> dict[str, Any]:
    return {r.service.id: r for r in result.referrals}


def test_a_stenosis_surgeon_referral_comes_with_a_lumbar_mri(kb) -> None:
    services = _services(_assess(kb.decision, STENOSIS, age=74))
    assert "spine-surgeon" in services and "mri-lumbar-spine" in services
    mri = services["mri-lumbar-spine"]
    assert mri.rules == ("surgical-workup-mri",) and mri.priority == "routine"
    assert "surgeon" in mri.reason and "before the surgical review" in mri.timing


def test_a_radicular_surgeon_referral_comes_with_a_lumbar_mri(kb) -> None:
    services = _services(_assess(kb.decision, RADICULAR, age=45))
    assert {"spine-surgeon", "mri-lumbar-spine", "injection-consultation"} <= set(services)
    assert "surgical-workup-mri" in services["mri-lumbar-spine"].rules


def test_no_second_mri_when_one_was_done(kb) -> None:
    for answers, age in ((STENOSIS, 74), (RADICULAR, 45)):
        services = _services(_assess(kb.decision, {**answers, "history.imaging": ("mri-lumbar",)},
                                     age=age))
        assert "spine-surgeon" in services and "mri-lumbar-spine" not in services


def test_the_radicular_mri_threshold_still_holds_before_a_surgeon(kb) -> None:
    """With a local surgical threshold (4 weeks) below the MRI one (6), a surgeon may be
    suggested at 5 weeks, but never a lumbar MRI without a red flag."""
    thresholds = {**DEFAULTS["DECISION_THRESHOLDS"], "SURGERY_RADICULAR_WEEKS": 4,
                  "CONSERVATIVE_CARE_WEEKS": 4}
    early = knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], DEFAULTS["MAPPINGS_DIR"], thresholds)
    answers = {**RADICULAR, "history.duration": ({"value": 5, "unit": "wk"},),
               "history.pt-weeks": (5,)}
    result = _assess(early.decision, answers, age=45)
    assert not result.red_flags
    services = _services(result)
    assert "spine-surgeon" in services and "mri-lumbar-spine" not in services


def test_physiotherapy_after_weeks_of_loading_is_a_review(kb) -> None:
    fresh = _services(_assess(kb.decision, {**RADICULAR, "history.pt-weeks": (2,),
                                            "history.duration": ({"value": 3, "unit": "wk"},)}))
    assert fresh["physiotherapy"].timing.startswith("Start now")
    tried = _services(_assess(kb.decision, RADICULAR))["physiotherapy"]
    assert tried.timing.startswith("Review the programme")
    assert "rather than start again" in tried.reason and "Start now" not in tried.timing
    assert tried.rules == ("physiotherapy",)
    assert "{" not in tried.reason
    # the review's own sources, only those about this patient's condition (radicular:
    # the sciatica guidelines, not the tendon programme of goom-2016)
    assert "rcgp-sciatica" in tried.citations and "goom-2016" not in tried.citations
    unknown = _services(_assess(kb.decision, {k: v for k, v in RADICULAR.items()
                                              if k != "history.pt-weeks"}))
    assert unknown["physiotherapy"].timing.startswith("Start now")  # unknown is not "tried"


def test_in_an_emergency_no_work_up_follows_a_filtered_referral(kb) -> None:
    result = _assess(kb.decision, {**STENOSIS, "red-flags.saddle-numbness": (True,)}, age=74)
    assert result.urgency == "emergency"
    services = _services(result)
    assert "spine-surgeon" not in services
    assert services["mri-lumbar-spine"].rules == ("ces-mri",)


def test_an_unexamined_origin_after_a_pop_is_named_not_ignored(kb) -> None:
    """No red flag without proximal findings, but the engine says the origin was not
    examined (avulsions are easily missed: Bertiche 2021)."""
    pop = {"history.onset": ("sudden",), "history.pop": (True,),
           "history.mechanism": ("sprinting",), "palpation.hamstring-mid.left": ("tender",)}
    result = _assess(kb.decision, pop)
    assert not result.red_flags
    assert "avulsion-origin-not-examined" in {c.id for c in result.caveats}
    examined = _assess(kb.decision, {**pop, "palpation.ischial-tuberosity.left": ("not-tender",)})
    assert "avulsion-origin-not-examined" not in {c.id for c in examined.caveats}
    tender = _assess(kb.decision, {**pop, "palpation.hamstring-proximal.left": ("tender",)})
    assert {f.definition.id for f in tender.red_flags} == {"proximal-hamstring-avulsion"}
