"""The plain answers format: what is accepted (and as which typed value), and the exact
message for what is not, keyed by linkId.

The contract (shared/exam-dictionary.md): ranges are inclusive and enforced, values are
never clamped, coerced from strings or guessed (``"40"`` is not an integer, ``1`` is not
``true``), unknown linkIds and nulls are errors, and every problem is reported at once.
"""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from plugin.core import answers, questionnaire, terminology
from plugin.core.questionnaire import Quantity
from plugin.errors import AnswerError, KnowledgeError

#: Answers that enable the dependent questions, added where a row needs them.
ENABLING = {"history.mechanism": {"history.onset": "sudden"},
            "history.pop": {"history.onset": "sudden"},
            "sitting.tolerance-minutes": {"sitting.effect": "aggravates"}}

GOOD = [
    # booleans
    ("red-flags.fever", True, (True,)),
    ("red-flags.fever", False, (False,)),
    ("history.pop", True, (True,)),
    # integers: both ends of every kind of range are inside (inclusive)
    ("slr.left.onset-angle", 0, (0,)),
    ("slr.left.onset-angle", 90, (90,)),
    ("slr.right.onset-angle", 40, (40,)),
    ("pain.current", 0, (0,)),
    ("pain.current", 10, (10,)),
    ("neuro.power.s1.left", 0, (0,)),
    ("neuro.power.s1.left", 5, (5,)),
    ("hip-drop.trendelenburg-hold.right", 30, (30,)),
    ("sitting.tolerance-minutes", 240, (240,)),
    ("history.pt-weeks", 260, (260,)),
    ("history.prior-hamstring-injuries", 20, (20,)),
    ("patient.age-years", 120, (120,)),
    # choices, including a standard-coded one answered by its short code
    ("history.onset", "sudden", ("sudden",)),
    ("history.mechanism", "forced-hip-flexion-knee-extended",
     ("forced-hip-flexion-knee-extended",)),
    ("history.affected-side", "bilateral", ("bilateral",)),
    ("slr.left.response", "leg-pain-below-knee", ("leg-pain-below-knee",)),
    ("hamstring-tests.resisted-knee-flexion.left", "weak-painful", ("weak-painful",)),
    # repeats keep the order given
    ("history.pain-location", ["sit-bone", "foot"], ("sit-bone", "foot")),
    ("history.pain-location", ["foot"], ("foot",)),
    ("history.imaging", ["mri-lumbar", "xray", "ultrasound"], ("mri-lumbar", "xray", "ultrasound")),
    ("history.imaging", ["none"], ("none",)),
    ("history.injections", ["none"], ("none",)),
    # quantities: the bound is 520 wk whatever the unit the clinician used
    ("history.duration", {"value": 6, "unit": "wk"}, (Quantity(6, "wk"),)),
    ("history.duration", {"value": 0, "unit": "d"}, (Quantity(0, "d"),)),
    ("history.duration", {"value": 520, "unit": "wk"}, (Quantity(520, "wk"),)),
    ("history.duration", {"value": 3640, "unit": "d"}, (Quantity(3640, "d"),)),
    ("history.duration", {"value": 119, "unit": "mo"}, (Quantity(119, "mo"),)),
    ("history.duration", {"value": 2.5, "unit": "d"}, (Quantity(Decimal("2.5"), "d"),)),
]

BAD = [
    # booleans are JSON true/false, nothing else
    ("red-flags.fever", 1, "Expected true or false, got 1."),
    ("red-flags.fever", 0, "Expected true or false, got 0."),
    ("red-flags.fever", "true", 'Expected true or false, got "true".'),
    ("red-flags.fever", "yes", 'Expected true or false, got "yes".'),
    # integers are JSON integers
    ("slr.left.onset-angle", "40", 'Expected a whole number, got "40".'),
    ("slr.left.onset-angle", 40.5, "Expected a whole number, got 40.5."),
    ("slr.left.onset-angle", 40.0, "Expected a whole number, got 40.0."),
    ("slr.left.onset-angle", True, "Expected a whole number, got True."),
    ("slr.left.onset-angle", [40], "Expected a whole number, got [40]."),
    # out of range, both ends, message naming the range (and unit where there is one)
    ("slr.left.onset-angle", 91, "91 is out of range: must be between 0 and 90°."),
    ("slr.left.onset-angle", -1, "-1 is out of range: must be between 0 and 90°."),
    ("pain.current", 11, "11 is out of range: must be between 0 and 10."),
    ("pain.worst-week", -1, "-1 is out of range: must be between 0 and 10."),
    ("neuro.power.l5.right", 6, "6 is out of range: must be between 0 and 5."),
    ("hip-drop.trendelenburg-hold.left", 31, "31 is out of range: must be between 0 and 30 seconds."),
    ("sitting.tolerance-minutes", 241, "241 is out of range: must be between 0 and 240 minutes."),
    ("history.pt-weeks", 261, "261 is out of range: must be between 0 and 260 weeks."),
    ("patient.age-years", 121, "121 is out of range: must be between 0 and 120 years."),
    # choices name the allowed codes
    ("history.onset", "slow", '"slow" is not an answer option; expected one of: sudden, gradual.'),
    ("history.affected-side", "7771000",
     '"7771000" is not an answer option; expected one of: left, right, bilateral.'),
    ("history.affected-side", "Left", '"Left" is not an answer option'),
    ("neuro.reflex.ankle.left", 2,
     "2 is not an answer option; expected one of: absent, reduced, normal, brisk."),
    # repeats are non-empty lists of distinct valid codes
    ("history.pain-location", [], "Expected a non-empty list, got []."),
    ("history.pain-location", "sit-bone", 'Expected a non-empty list, got "sit-bone".'),
    ("history.pain-location", {"sit-bone": True}, "Expected a non-empty list"),
    ("history.pain-location", ["foot", "foot"], "The same answer is given more than once."),
    ("history.pain-location", ["foot", "knee"], '[1] "knee" is not an answer option'),
    ("history.pain-location", [None], "[0] Must not be null"),
    # "None" is exclusive (questionnaire-optionExclusive): never stored beside another
    ("history.imaging", ["none", "xray"],
     '"None" excludes every other answer; choose it alone or leave it out.'),
    ("history.injections", ["prp", "none"], '"None" excludes every other answer'),
    ("history.relieving", ["rest", "none", "sitting"], '"None" excludes every other answer'),
    # quantities: the unit is one of the offered UCUM codes, the value in range in any unit
    ("history.duration", {"value": 6, "unit": "yr"},
     'Unit "yr" is not allowed; expected one of: d, wk, mo.'),
    ("history.duration", {"value": 6, "unit": "weeks"}, 'Unit "weeks" is not allowed'),
    ("history.duration", {"value": 521, "unit": "wk"},
     "521 weeks is out of range: must be between 0 and 520 weeks."),
    ("history.duration", {"value": -1, "unit": "wk"},
     "-1 weeks is out of range: must be between 0 and 520 weeks."),
    ("history.duration", {"value": 120, "unit": "mo"},
     "120 months is out of range: must be between 0 and 520 weeks."),
    ("history.duration", {"value": 3641, "unit": "d"},
     "3641 days is out of range: must be between 0 and 520 weeks."),
    ("history.duration", {"value": "6", "unit": "wk"}, 'Expected a number for value, got "6".'),
    ("history.duration", {"value": True, "unit": "wk"}, "Expected a number for value, got True."),
    ("history.duration", {"value": 6, "unit": "wk", "system": "http://unitsofmeasure.org"},
     'Expected {"value": number, "unit": code}'),
    ("history.duration", 6, 'Expected {"value": number, "unit": code}, got 6.'),
    # unknown linkIds (including a group's) and nulls
    ("slr.left.angle", 40, "Unknown linkId: not a question of this Questionnaire."),
    ("slr.left", 40, "Unknown linkId: not a question of this Questionnaire."),
    ("pain.current", None, "Must not be null; leave the question out instead."),
    ("history.pain-location", None, "Must not be null; leave the question out instead."),
]


@pytest.mark.parametrize(("link_id", "raw", "typed"), GOOD)
def test_accepted_as_the_typed_value(form, link_id, raw, typed) -> None:
    loaded = answers.load_plain(form, {link_id: raw, **ENABLING.get(link_id, {})})
    assert loaded[link_id] == typed


@pytest.mark.parametrize(("link_id", "raw", "message"), BAD)
def test_refused_with_a_message_naming_the_linkid(form, link_id, raw, message) -> None:
    with pytest.raises(AnswerError) as caught:
        answers.load_plain(form, {link_id: raw, **ENABLING.get(link_id, {})})
    assert list(caught.value.errors) == [link_id], caught.value.errors
    assert any(message in m for m in caught.value.errors[link_id]), caught.value.errors
    assert link_id in str(caught.value)


@pytest.mark.parametrize(("given", "link_id", "condition"), [
    ({"history.onset": "gradual", "history.pop": True}, "history.pop", "history.onset = sudden"),
    ({"history.onset": "gradual", "history.mechanism": "sprinting"}, "history.mechanism",
     "history.onset = sudden"),
    ({"history.mechanism": "kicking"}, "history.mechanism", "history.onset = sudden"),
    ({"sitting.effect": "relieves", "sitting.tolerance-minutes": 10},
     "sitting.tolerance-minutes", "sitting.effect = aggravates"),
    ({"sitting.effect": "no-effect", "sitting.tolerance-minutes": 10},
     "sitting.tolerance-minutes", "sitting.effect = aggravates"),
])
def test_an_answer_to_a_disabled_item_is_an_error(form, given, link_id, condition) -> None:
    with pytest.raises(AnswerError) as caught:
        answers.load_plain(form, given)
    assert caught.value.errors == {
        link_id: [f"Answered, but this question applies only when {condition}."]}


def test_enabled_dependants_are_accepted(form) -> None:
    loaded = answers.load_plain(form, {"history.onset": "sudden", "history.pop": True,
                                       "history.mechanism": "kicking",
                                       "sitting.effect": "aggravates",
                                       "sitting.tolerance-minutes": 15})
    assert loaded["history.pop"] == (True,) and loaded["sitting.tolerance-minutes"] == (15,)
    assert loaded["history.mechanism"] == ("kicking",)


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
    assert str(caught.value).startswith("5 problem(s) in the answers: ")


@pytest.mark.parametrize(("link_id", "raw"), [
    ("slr.left.onset-angle", 90.0001), ("slr.left.onset-angle", 90.5),
    ("slr.left.onset-angle", -0.5), ("pain.current", 10.4), ("neuro.power.s1.left", 5.2),
    ("history.duration", {"value": 520.01, "unit": "wk"}),
    ("history.duration", {"value": 119.6, "unit": "mo"}),
    ("history.duration", {"value": -0.1, "unit": "d"}),
])
def test_values_are_never_clamped_or_rounded_into_range(form, link_id, raw) -> None:
    with pytest.raises(AnswerError) as caught:
        answers.load_plain(form, {link_id: raw})
    assert list(caught.value.errors) == [link_id]


def test_accepted_values_come_back_exactly_as_given(form) -> None:
    given = {"slr.left.onset-angle": 37, "history.duration": {"value": 2.75, "unit": "d"},
             "history.pain-location": ["foot", "sit-bone"]}
    loaded = answers.load_plain(form, given)
    assert {k: [answers.plain_value(form.index[k], v) for v in vs]
            for k, vs in loaded.items()} == {
        "history.duration": [{"value": 2.75, "unit": "d"}], "slr.left.onset-angle": [37],
        "history.pain-location": ["foot", "sit-bone"]}


@pytest.mark.parametrize("data", [[], "answers", 42, None, [{"pain.current": 3}]])
def test_answers_must_be_an_object(form, data) -> None:
    with pytest.raises(AnswerError) as caught:
        answers.load_plain(form, data)
    assert caught.value.errors == {"(answers)": ["Expected a JSON object of linkId: value."]}


def test_no_answers_at_all_is_a_valid_empty_exam(form) -> None:
    assert dict(answers.load_plain(form, {})) == {}


def test_answers_come_back_in_questionnaire_order(form) -> None:
    loaded = answers.load_plain(form, {"pain.current": 3, "history.onset": "gradual",
                                       "slr.left.onset-angle": 50})
    assert list(loaded) == ["history.onset", "slr.left.onset-angle", "pain.current"]


def _exclusive_items(form) -> list:
    return [i for i in form.answerable if any(o.exclusive for o in i.options)]


def test_every_none_of_a_multi_select_is_exclusive(form) -> None:
    """The Questionnaire marks "None" of each multi-select with optionExclusive."""
    assert {i.link_id for i in _exclusive_items(form)} == {
        "history.relieving", "history.imaging", "history.injections"}
    assert all([o.code for o in i.options if o.exclusive] == ["none"]
               for i in _exclusive_items(form))


def test_an_exclusive_option_with_any_other_is_refused_for_every_item(form) -> None:
    for item in _exclusive_items(form):
        alone = next(o for o in item.options if o.exclusive)
        for other in (o for o in item.options if not o.exclusive):
            with pytest.raises(AnswerError) as caught:
                answers.load_plain(form, {item.link_id: [other.code, alone.code]})
            assert caught.value.errors == {item.link_id: [
                f'"{alone.display}" excludes every other answer; choose it '
                "alone or leave it out."]}
            assert answers.load_plain(form, {item.link_id: [other.code]})[item.link_id] == (
                other.code,)


def test_an_exclusive_option_on_a_single_choice_stops_loading(form) -> None:
    """A definition error, caught at start-up: "exclusive" means nothing on a radio."""
    resource = json.loads(json.dumps(form.resource))
    history = next(i for i in resource["item"] if i["linkId"] == "history")
    onset = next(i for i in history["item"] if i["linkId"] == "history.onset")
    onset["answerOption"][0]["extension"] = [
        {"url": terminology.EXT_OPTION_EXCLUSIVE, "valueBoolean": True}]
    with pytest.raises(KnowledgeError, match="history.onset: an exclusive option"):
        questionnaire.parse(resource, source="test", equivalents=_EQUIVALENTS)


#: The standard codes offered as options, as the knowledge loader reads them.
_EQUIVALENTS = {("http://snomed.info/sct", c): (p, p) for c, p in
                (("7771000", "left"), ("24028007", "right"), ("51440002", "bilateral"))}
