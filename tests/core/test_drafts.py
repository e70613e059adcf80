"""Drafts keep everything typed, report every problem, and build an in-progress QR of
the valid part; progress counts only the questions that apply."""
from __future__ import annotations

import pytest

from plugin.core import answers, drafts, fhir_models
from plugin.core.responses import Context


def test_partial_load_keeps_valid_answers_beside_the_problems(form) -> None:
    valid, errors = answers.load_partial(form, {"slr.left.onset-angle": 400,
                                                "slr.right.onset-angle": 35,
                                                "pain.current": "x",
                                                "history.onset": "gradual",
                                                "history.mechanism": "kicking"})
    assert dict(valid) == {"history.onset": ("gradual",), "slr.right.onset-angle": (35,)}
    assert set(errors) == {"slr.left.onset-angle", "pain.current", "history.mechanism"}
    assert "applies only when" in errors["history.mechanism"][0]


def test_partial_load_matches_the_strict_load_when_valid(form) -> None:
    data = {"slr.left.onset-angle": 40, "history.aggravating": ["sitting", "running"]}
    assert answers.load_partial(form, data) == (answers.load_plain(form, data), {})


def test_partial_load_of_a_non_object_is_one_error(form) -> None:
    valid, errors = answers.load_partial(form, ["slr"])
    assert not valid and list(errors) == ["(answers)"]


def test_a_dependent_answer_is_dropped_but_not_blamed_when_its_control_is_wrong(form) -> None:
    valid, errors = answers.load_partial(form, {"history.onset": "slow",
                                                "history.mechanism": "kicking"})
    assert not valid and list(errors) == ["history.onset"]


def test_check_keeps_the_raw_answers_verbatim(form) -> None:
    raw = {"slr.left.onset-angle": "4o", "pain.current": 3}
    checked = drafts.check(form, raw)
    assert checked.raw == raw and dict(checked.valid) == {"pain.current": (3,)}


def test_merge_replaces_one_page_and_keeps_the_rest() -> None:
    stored = {"pain.current": 3, "slr.left.onset-angle": 40, "slr.left.response": "none"}
    merged = drafts.merge(stored, ["slr.left.onset-angle", "slr.left.response"],
                          {"slr.left.onset-angle": 45, "pain.current": 9})
    assert merged == {"pain.current": 3, "slr.left.onset-angle": 45}


def test_the_draft_response_is_in_progress_and_valid_fhir(form) -> None:
    checked = drafts.check(form, {"slr.left.onset-angle": 400, "pain.current": 3})
    qr = drafts.response(form, checked, Context(status="in-progress", identifier="exam-1",
                                                authored="2026-11-21T10:00:00+00:00"))
    assert qr["status"] == "in-progress" and qr["identifier"]["value"] == "exam-1"
    assert [i["linkId"] for i in qr["item"]] == ["pain"]
    assert fhir_models.validate(qr) == []


@pytest.mark.parametrize("raw, section, expected", [
    ({}, "history", (0, 15)),                       # mechanism and pop wait for onset
    ({"history.onset": "sudden"}, "history", (1, 17)),
    ({"sitting.effect": "aggravates"}, "sitting", (1, 5)),
    ({"slr.left.onset-angle": 40}, "slr", (1, 8)),
])
def test_progress_counts_only_questions_that_apply(form, raw, section, expected) -> None:
    assert drafts.progress(form, drafts.check(form, raw).valid)[section] == expected


def test_section_of_finds_the_top_level_group(form) -> None:
    assert drafts.section_of(form, "neuro.power.l4.left").link_id == "neuro"
    assert drafts.section_of(form, "pain").link_id == "pain"
