"""Visits compared: elapsed time from the episode's first visit, the response to
treatment in words naming the visits, and the engine's timing rules using both."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from plugin.core import answers as answers_mod
from plugin.decision import assessment, course, episode, facts
from plugin.errors import KnowledgeError

CASES = Path(__file__).resolve().parents[1] / "data" / "cases"
DAY1 = dt.date(2026, 3, 1)


def _case(name: str) -> dict:
    return json.loads((CASES / f"{name}.json").read_text(encoding="utf-8"))["answers"]


def visit(answers: dict, date: dt.date = DAY1, kind: str = "initial") -> episode.Visit:
    return episode.Visit(f"exam-{date.isoformat()}", kind, date, answers, None)


def assess_follow_up(kb, answers: dict, prior: list[episode.Visit], on: dt.date):
    """A follow-up assessed as the engine sees it: the exam's linkIds typed by the
    exam's schema, the follow-up's own items (K2) as plain values."""
    form = kb.forms["posterior-thigh-exam"]
    typed, errors = answers_mod.load_partial(
        form, {k: v for k, v in answers.items() if k in form.index})
    assert not errors, errors
    typed = {**typed, **{k: episode.loaded(v) for k, v in answers.items()
                         if k not in form.index}}
    return assessment.assess(kb.decision, facts.from_answers(typed), prior, on=on)


def follow_up_of(first: dict, changes: dict | None = None) -> dict:
    """What a follow-up re-tests of the first visit's answers, with changes."""
    kept = {k: v for k, v in first.items()
            if not k.startswith(("history.", "neuro.", "patient."))}
    kept["neuro.since-last-visit"] = "unchanged"
    kept.update(changes or {})
    return kept


def test_elapsed_time_is_the_first_visits_duration_plus_the_time_since() -> None:
    first = visit({"history.duration": {"value": 4, "unit": "wk"}})
    later = visit({}, DAY1 + dt.timedelta(days=21), "follow-up")
    time = episode.elapsed([first, later])
    assert time is not None and time.weeks == 7 and not time.at_least
    assert time.text == "7 weeks: 4 weeks at the initial exam on 1 March 2026 + 3 weeks since"
    months = episode.elapsed([visit({"history.duration": {"value": 2, "unit": "mo"}}), later])
    assert months is not None and float(months.weeks) == pytest.approx(11.7, abs=0.05)


def test_elapsed_time_without_a_recorded_duration_is_a_lower_bound() -> None:
    time = episode.elapsed([visit({}), visit({}, DAY1 + dt.timedelta(days=14), "follow-up")])
    assert time is not None and time.at_least and time.weeks == 2
    assert time.text.startswith("at least 2 weeks")
    assert episode.elapsed([visit({})]) is None


def test_loading_weeks_count_from_the_first_visit_unless_the_programme_was_not_done() -> None:
    first = visit({"history.pt-weeks": 2})
    later = DAY1 + dt.timedelta(days=70)
    assert episode.loading_weeks([first, visit({}, later, "follow-up")]) == 12
    assert episode.loading_weeks([first, visit({"history.pt-weeks": 5}, later)]) == 5
    assert episode.loading_weeks(
        [first, visit({"follow-up.adherence": "none"}, later, "follow-up")]) is None


def test_each_finding_is_compared_in_words_naming_both_visits(kb) -> None:
    before = visit({"pain.current": 6, "pain.worst-week": 8, "slr.left.onset-angle": 35,
                    "hamstring-tests.resisted-knee-flexion.left": "weak-painful"})
    after = visit({"pain.current": 3, "pain.worst-week": 7, "slr.left.onset-angle": 30,
                   "hamstring-tests.resisted-knee-flexion.left": "strong-painfree",
                   "follow-up.global-rating": "improving"},
                  dt.date(2026, 4, 12), "follow-up")
    rows = {c.link_id: c for c in episode.compare(kb.decision.course, before, after).changes}
    assert (rows["pain.current"].then, rows["pain.current"].now,
            rows["pain.current"].words) == ("6/10", "3/10", "improving")
    assert rows["pain.current"].compared == (
        "Pain now 6/10 on 1 March 2026 (initial exam) -> 3/10 on 12 April 2026 (follow-up)")
    assert rows["pain.worst-week"].words == "not improving"  # 1 point: below the 2
    assert rows["pain.worst-week"].detail == "-1 points (less than 2)"
    assert rows["slr.left.onset-angle"].words == "not improving"  # 5 degrees
    assert rows["hamstring-tests.resisted-knee-flexion.left"].words == "improving"
    assert rows["hamstring-tests.resisted-knee-flexion.left"].now == "strong and pain-free"
    assert rows["follow-up.global-rating"].now == "improving"
    assert "slr.right.onset-angle" not in rows  # recorded at neither visit


def test_the_course_is_worse_when_any_deciding_comparison_is_worse(kb) -> None:
    before = visit({"pain.current": 5, "pain.worst-week": 8})
    better_pain = {"pain.current": 2, "pain.worst-week": 5}
    later = dt.date(2026, 3, 29)
    course = kb.decision.course
    assert episode.course(course, [before, visit(better_pain, later, "follow-up")]).verdict \
        == "improving"
    rated_worse = visit({**better_pain, "follow-up.global-rating": "worse"}, later, "follow-up")
    assert episode.course(course, [before, rated_worse]).verdict == "worse"
    same = visit({"pain.current": 5, "pain.worst-week": 7}, later, "follow-up")
    assert episode.course(course, [before, same]).verdict == "not-improving"
    assert episode.course(course, [before, visit({}, later, "follow-up")]).verdict is None
    assert episode.course(course, [before]) is None


def test_an_unchanged_neuro_screen_carries_the_previous_findings_in_words(kb) -> None:
    first = visit({"neuro.power.l5.left": 4, "neuro.sensation.l5.left": "reduced"})
    later = visit({"neuro.since-last-visit": "unchanged"}, dt.date(2026, 3, 15), "follow-up")
    comparison = episode.compare(kb.decision.course, first, later)
    assert comparison.notes == ("Neurological screen: unchanged since the initial exam on "
                                "1 March 2026; the findings recorded then still stand.",)
    state = episode.effective_answers([first, later])
    assert state["neuro.power.l5.left"] == 4 and state["neuro.sensation.l5.left"] == "reduced"
    changed = visit({"neuro.since-last-visit": "changed", "neuro.power.l5.left": 5,
                     "neuro.sensation.l5.left": "normal"}, dt.date(2026, 3, 15), "follow-up")
    rows = {c.link_id: c for c in episode.compare(kb.decision.course, first, changed).changes}
    assert (rows["neuro"].then, rows["neuro"].now, rows["neuro"].words) == ("2", "0", "improving")
    assert episode.effective_answers([first, changed])["neuro.power.l5.left"] == 5


def test_without_earlier_visits_the_assessment_is_that_of_a_single_exam(kb) -> None:
    answers = _case("radiculopathy-4-weeks-severe-no-mri-yet")
    typed = answers_mod.load_plain(kb.forms["posterior-thigh-exam"], answers)
    single = assessment.assess(kb.decision, facts.from_answers(typed))
    assert single.episode is None and "episode" not in single.as_json()
    assert not any(c.id.startswith("episode-") for c in single.caveats)


def test_radicular_pain_not_improving_past_six_weeks_suggests_mri_citing_the_visits(kb) -> None:
    first = _case("radiculopathy-4-weeks-severe-no-mri-yet")  # 4 weeks, pain 7 and 9
    result = assess_follow_up(kb, follow_up_of(first), [visit(first)], dt.date(2026, 3, 22))
    services = {r.service.id: r for r in result.referrals}
    assert "mri-lumbar-spine" in services
    mri = services["mri-lumbar-spine"]
    assert "radicular-not-improving-mri" in mri.rules
    assert ("Pain now 7/10 on 1 March 2026 (initial exam) -> 7/10 on 22 March 2026 "
            "(follow-up)") in mri.reason
    assert "7 weeks: 4 weeks at the initial exam on 1 March 2026 + 3 weeks since" in \
        " ".join(c.text for c in result.caveats)
    assert result.disclaimer  # still worded as a suggestion


def test_the_same_pain_improving_at_follow_up_suggests_no_mri(kb) -> None:
    first = _case("radiculopathy-4-weeks-severe-no-mri-yet")
    better = follow_up_of(first, {"pain.current": 3, "pain.worst-week": 4})
    result = assess_follow_up(kb, better, [visit(first)], dt.date(2026, 3, 22))
    assert result.episode.course.verdict == "improving"
    assert "mri-lumbar-spine" not in {r.service.id for r in result.referrals}


def test_before_six_weeks_elapsed_not_improving_suggests_no_mri(kb) -> None:
    first = _case("radiculopathy-4-weeks-severe-no-mri-yet")
    result = assess_follow_up(kb, follow_up_of(first), [visit(first)], dt.date(2026, 3, 8))
    assert result.episode.elapsed.weeks == 5
    assert "mri-lumbar-spine" not in {r.service.id for r in result.referrals}


def test_tendinopathy_not_improving_after_twelve_weeks_of_loading(kb) -> None:
    first = _case("pht-runner-2-weeks-loading")
    later = DAY1 + dt.timedelta(weeks=10)  # 2 weeks at the first visit + 10 since
    result = assess_follow_up(kb, follow_up_of(first), [visit(first)], later)
    rules = {rule for r in result.referrals for rule in r.rules}
    assert {"pht-not-improving", "pht-not-improving-injection"} <= rules, rules
    improving = follow_up_of(first, {"follow-up.global-rating": "improving"})
    calmer = assess_follow_up(kb, improving, [visit(first)], later)
    assert not {"pht-not-improving", "pht-mri", "pht-injection"} & {
        rule for r in calmer.referrals for rule in r.rules}


def test_a_new_red_flag_at_a_follow_up_escalates_as_at_a_first_exam(kb) -> None:
    first = _case("radiculopathy-4-weeks-severe-no-mri-yet")
    flagged = follow_up_of(first)
    flagged["red-flags.saddle-numbness"] = True
    result = assess_follow_up(kb, flagged, [visit(first)], dt.date(2026, 3, 22))
    assert result.urgency == "emergency"
    assert [r.priority for r in result.referrals] == ["stat"] * len(result.referrals)
    assert "emergency-department" in {r.service.id for r in result.referrals}


def test_assessing_visits_needs_the_current_date(kb) -> None:
    with pytest.raises(ValueError):
        assessment.assess(kb.decision, facts.from_answers({}), [visit({})])


def test_a_course_predicate_is_refused_unless_it_names_known_verdicts(kb, tmp_path) -> None:
    with pytest.raises(KnowledgeError, match="course"):
        course.parse({"changes": {"pain.current": {"label": "Pain", "mcid": 2,
                                                    "mcid_source": "x"}},
                       "course_from": ["pain.typo"]}, source="course.json")
    from plugin.decision import predicates as p
    scope = p.Scope(kb.forms["posterior-thigh-exam"], {}, "referrals.json")
    with pytest.raises(KnowledgeError, match="course"):
        p.compile_({"course": ["better"]}, scope, "rules[0].when")
