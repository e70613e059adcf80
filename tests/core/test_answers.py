"""The answers schema: what is accepted, and the exact message for what is not."""
from __future__ import annotations

from decimal import Decimal

import pytest

from plugin.core import answers
from plugin.core.questionnaire import Quantity
from plugin.errors import AnswerError

GOOD = [
    ("red-flags.fever", True, (True,)),
    ("slr.left.onset-angle", 0, (0,)),
    ("slr.left.onset-angle", 90, (90,)),
    ("pain.current", 10, (10,)),
    ("history.onset", "sudden", ("sudden",)),
    ("history.pain-location", ["sit-bone", "foot"], ("sit-bone", "foot")),
    ("history.duration", {"value": 6, "unit": "wk"}, (Quantity(6, "wk"),)),
    ("history.duration", {"value": 119, "unit": "mo"}, (Quantity(119, "mo"),)),
    ("history.duration", {"value": 2.5, "unit": "d"}, (Quantity(Decimal("2.5"), "d"),)),
    ("history.affected-side", "bilateral", ("bilateral",)),
]

BAD = [
    ("red-flags.fever", 1, "Expected true or false, got 1."),
    ("red-flags.fever", "true", 'Expected true or false, got "true".'),
    ("slr.left.onset-angle", "40", 'Expected a whole number, got "40".'),
    ("slr.left.onset-angle", 40.5, "Expected a whole number, got 40.5."),
    ("slr.left.onset-angle", True, "Expected a whole number, got True."),
    ("slr.left.onset-angle", 91, "91 is out of range: must be between 0 and 90 deg."),
    ("slr.left.onset-angle", -1, "-1 is out of range: must be between 0 and 90 deg."),
    ("pain.current", 11, "11 is out of range: must be between 0 and 10."),
    ("history.onset", "slow", '"slow" is not an answer option; expected one of: sudden, gradual.'),
    ("history.pain-location", [], "Expected a non-empty list, got []."),
    ("history.pain-location", "sit-bone", 'Expected a non-empty list, got "sit-bone".'),
    ("history.pain-location", ["foot", "foot"], "The same answer is given more than once."),
    ("history.pain-location", ["foot", "knee"], '[1] "knee" is not an answer option'),
    ("history.duration", {"value": 6, "unit": "yr"}, 'Unit "yr" is not allowed; expected one of: d, wk, mo.'),
    ("history.duration", {"value": 521, "unit": "wk"}, "521 wk is out of range: must be between 0 and 520 wk."),
    ("history.duration", {"value": 120, "unit": "mo"}, "120 mo is out of range: must be between 0 and 520 wk."),
    ("history.duration", 6, 'Expected {"value": number, "unit": code}, got 6.'),
    ("slr.left.angle", 40, "Unknown linkId: not a question of this Questionnaire."),
    ("pain.current", None, "Must not be null; leave the question out instead."),
]


@pytest.mark.parametrize(("link_id", "raw", "typed"), GOOD)
def test_accepted(form, link_id, raw, typed) -> None:
    extra = {"history.onset": "sudden"} if link_id.startswith("history.mechanism") else {}
    assert answers.load_plain(form, {link_id: raw, **extra})[link_id] == typed


@pytest.mark.parametrize(("link_id", "raw", "message"), BAD)
def test_refused_with_a_message_naming_the_linkid(form, link_id, raw, message) -> None:
    with pytest.raises(AnswerError) as caught:
        answers.load_plain(form, {link_id: raw})
    assert list(caught.value.errors) == [link_id]
    assert any(message in m for m in caught.value.errors[link_id]), caught.value.errors


@pytest.mark.parametrize(("given", "link_id", "condition"), [
    ({"history.onset": "gradual", "history.pop": True}, "history.pop", "history.onset = sudden"),
    ({"history.mechanism": "kicking"}, "history.mechanism", "history.onset = sudden"),
    ({"sitting.effect": "relieves", "sitting.tolerance-minutes": 10},
     "sitting.tolerance-minutes", "sitting.effect = aggravates"),
])
def test_an_answer_to_a_disabled_item_is_an_error(form, given, link_id, condition) -> None:
    with pytest.raises(AnswerError) as caught:
        answers.load_plain(form, given)
    assert caught.value.errors == {
        link_id: [f"Answered, but this question applies only when {condition}."]}


def test_enabled_dependants_are_accepted(form) -> None:
    loaded = answers.load_plain(form, {"history.onset": "sudden", "history.pop": True,
                                       "sitting.effect": "aggravates",
                                       "sitting.tolerance-minutes": 15})
    assert loaded["history.pop"] == (True,) and loaded["sitting.tolerance-minutes"] == (15,)


def test_a_wrong_controlling_answer_is_reported_once(form) -> None:
    with pytest.raises(AnswerError) as caught:
        answers.load_plain(form, {"history.onset": "slowly", "history.pop": True})
    assert list(caught.value.errors) == ["history.onset"]


def test_all_errors_are_reported_at_once(form) -> None:
    with pytest.raises(AnswerError) as caught:
        answers.load_plain(form, {"slr.left.onset-angle": 95, "pain.current": "5",
                                  "history.onset": "slow", "red-flags.fever": 0,
                                  "no.such.item": 1, "slr.right.onset-angle": 45})
    assert set(caught.value.errors) == {"slr.left.onset-angle", "pain.current", "history.onset",
                                        "red-flags.fever", "no.such.item"}


def test_values_are_never_clamped(form) -> None:
    with pytest.raises(AnswerError):
        answers.load_plain(form, {"slr.left.onset-angle": 90.0001})


@pytest.mark.parametrize("data", [[], "answers", 42, None])
def test_answers_must_be_an_object(form, data) -> None:
    with pytest.raises(AnswerError) as caught:
        answers.load_plain(form, data)
    assert "Expected a JSON object" in caught.value.errors["(answers)"][0]


def test_answers_come_back_in_questionnaire_order(form) -> None:
    loaded = answers.load_plain(form, {"pain.current": 3, "history.onset": "gradual",
                                       "slr.left.onset-angle": 50})
    assert list(loaded) == ["history.onset", "slr.left.onset-angle", "pain.current"]
