"""Golden episodes: several visits of one patient in, the follow-up's decision support,
"Since last visit", return-to-sport checklist and handout paragraph out.

Each file in tests/data/episodes/ tells a clinical story and its expectations, written by
hand from shared/clinical.md and shared/outcomes.md (tests/data/episodes/README.md) and
reviewed on purpose; this test only compares. The follow-ups' own questions (contract
K2: ``neuro.since-last-visit``, ``follow-up.*``, ``return-to-sport.*``) are plain
values; every re-tested question is typed by the exam's schema, so a wrong value in a
case fails here.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import textstat

from plugin.adapters.documents import render
from plugin.core import answers as answers_mod
from plugin.decision import assessment, episode, facts, visit_report
from plugin.record import pipeline
from tests.support import pdfs

EPISODES = sorted((Path(__file__).resolve().parents[1] / "data" / "episodes").glob("*.json"))
MAX_GRADE = 8


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _age(patient: dict[str, Any], on: dt.date) -> int:
    born = dt.date.fromisoformat(patient["birthDate"])
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _typed(kb, answers: dict[str, Any], kind: str) -> dict[str, tuple[Any, ...]]:
    """The visit's answers typed by its own form's schema (a follow-up's by the follow-up
    Questionnaire, K2 items included): a value the form would refuse fails the case."""
    form = kb.forms["posterior-thigh-follow-up" if kind == "follow-up" else "posterior-thigh-exam"]
    unknown = sorted(set(answers) - set(form.index))
    assert not unknown, f"not items of {form.id}: {unknown}"
    typed, errors = answers_mod.load_partial(form, answers)
    assert not errors, errors
    return dict(typed)


def _assess(kb, case: dict[str, Any], upto: int) -> tuple[Any, list[episode.Visit]]:
    """Visit ``upto`` assessed over the visits before it (each with its own top
    condition, assessed the same way)."""
    prior: list[episode.Visit] = []
    for n, v in enumerate(case["visits"][:upto + 1]):
        on = dt.date.fromisoformat(v["date"])
        result = assessment.assess(
            kb.decision, facts.from_answers(_typed(kb, v["answers"], v["kind"]),
                                            age=_age(case["patient"], on)),
            list(prior), on=on, kind=v["kind"]) if prior else pipeline.assess_answers(
            kb, {**_typed(kb, v["answers"], v["kind"]), "patient.age-years": (_age(case["patient"], on),)})
        top = result.differential[0].condition.id if result.differential else None
        visit = episode.Visit(f"exam-{n}", v["kind"], on, v["answers"], top)
        if n == upto:
            return result, [*prior, visit]
        prior.append(visit)
    raise AssertionError("no such visit")


@pytest.fixture(params=EPISODES, ids=lambda p: p.stem)
def case(request) -> dict[str, Any]:
    return _load(request.param)


def test_there_are_the_four_required_episodes() -> None:
    names = {p.stem for p in EPISODES}
    assert {"radicular-improving-at-4-weeks", "radicular-plateau-at-7-weeks",
            "radicular-worse-new-saddle-numbness",
            "hamstring-strain-return-to-sport-4-of-7"} <= names


def test_the_follow_up_assessment_is_the_expected_one(kb, case) -> None:
    result, _ = _assess(kb, case, len(case["visits"]) - 1)
    want = case["expected"]
    assert result.urgency == want["urgency"]
    assert {f.definition.id for f in result.red_flags} == set(want["red_flags"])
    ranked = [c.condition.id for c in result.differential]
    assert (ranked[0] if ranked else None) == want["top_condition"], ranked
    assert float(result.episode.elapsed.weeks) == want["elapsed_weeks"]
    assert result.episode.course.verdict == want["course"]
    services = {r.service.id: r for r in result.referrals}
    assert set(want["referrals_required"]) <= set(services), list(services)
    assert not set(want["referrals_forbidden"]) & set(services), list(services)
    for service, compared in want["rules_cited"].items():
        assert compared in services[service].reason, services[service].reason
    if result.urgency == "emergency":
        assert {r.priority for r in result.referrals} == {"stat"}
    assert "suggest" in result.disclaimer.lower()
    assert len(want["reasoning"]) > 80 and case["story"]


def test_since_last_visit_return_to_sport_and_the_handout_words(kb, case) -> None:
    result, visits = _assess(kb, case, len(case["visits"]) - 1)
    view = visit_report.view(kb.decision.course, kb.return_to_sport, visits)
    want = case["expected"]
    rows = {r["finding"]: [r["now"], r["change"]] for r in view["rows"]}
    for finding, expected in want["since_last_visit"].items():
        assert rows.get(finding) == expected, (finding, rows)
    assert view["notes"] == want["notes"]
    rts = view["return_to_sport"]
    assert (rts["summary"] if rts else None) == want["return_to_sport"]
    html = render.handout_html(kb, result.as_json(), episode=view)
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    for line in want["handout"]:
        assert line in text
    if result.red_flags:  # the urgent message first, and no progress paragraph at all
        assert "Since your last visit" not in text
        assert 'id="lead" class="urgent"' in html
    else:
        assert "Since your last visit" in text
        grade = textstat.flesch_kincaid_grade(" ".join(view["improved"]))
        assert grade <= MAX_GRADE, (view["improved"], grade)


def test_the_summary_pdf_shows_the_table_and_the_checklist_with_its_source(kb) -> None:
    case = _load(next(p for p in EPISODES if p.stem.startswith("hamstring")))
    result, visits = _assess(kb, case, 1)
    view = visit_report.view(kb.decision.course, kb.return_to_sport, visits)
    form = kb.forms["posterior-thigh-exam"]
    exam = pipeline.exam_from_input(
        kb, {k: v for k, v in case["visits"][1]["answers"].items() if k in form.index},
        patient=case["patient"], now=dt.datetime(2026, 11, 2, 10, tzinfo=dt.timezone.utc))
    pdf = render.summary_pdf(kb, exam, result.as_json(),
                             render.Visit(patient=case["patient"], exam_date="2026-11-02"),
                             episode=view)
    text = " ".join(pdfs.text_of(pdf).split())
    for words in ("Since last visit", "5 October 2026 (initial exam)",
                  "Resisted knee flexion, right", "strong and pain-free",
                  "Return to sport: consensus criteria",
                  "4 of 7 criteria met; not met: performance on field testing",
                  "shared between the clinician and the patient",
                  "van der Horst", "No Delphi consensus for the H-test (58 %)",
                  "12.5 %"):
        assert words in text, words
    assert not re.search(r"\b(fit to play|cleared)\b", text, re.I)
