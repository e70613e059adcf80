"""What a patient reads is the instrument's published wording, never a placeholder.

STarT Back's items carry LOINC's names for them (panel 91349-1, used with Keele's
permission) and LOINC's codes, so a receiver trends the items and scores by LOINC. LEFS
ships without its wording: its Questionnaire says so in data (our
``item-wording-not-included`` extension), which is what keeps it from being handed to a
patient (``record.proms.not_for_patients``) — not a guess from its text.
"""
from __future__ import annotations

import json

import pytest

from plugin.core import prom_answers, terminology as t
from plugin.record import proms
from tests.support import knowledge_copies

LOINC = "http://loinc.org"
#: loinc.org/91349-1 (accessed 2026-12-06): each item's code and name, in order.
START_BACK_ITEMS = [
    ("91340-0", "My back pain has spread down my leg(s) at some time in the last 2 weeks"),
    ("91341-8", "I have had pain in the shoulder or neck at some time in the last 2 weeks"),
    ("91342-6", "I have only walked short distances because of my back pain"),
    ("91343-4", "In the last 2 weeks, I have dressed more slowly than usual because of back pain"),
    ("91344-2", "It's not really safe for a person with a condition like mine to be physically "
                "active"),
    ("91345-9", "Worrying thoughts have been going through my mind a lot of the time"),
    ("91346-7", "I feel that my back pain is terrible and it's never going to get any better"),
    ("91347-5", "In general I have not enjoyed all the things I used to enjoy"),
    ("91348-3", "Overall, how bothersome has your back pain been in the last 2 weeks?"),
]


def test_start_back_items_are_loincs_wording_and_codes(kb) -> None:
    sbst = kb.instruments["keele-start-back"]
    assert sbst.resource["code"] == [{"system": LOINC, "code": "91349-1",
                                      "display": "STarT Back Screening Tool panel"}]
    questions = prom_answers.questions(sbst)
    assert [(q.link_id, q.text) for q in questions] == [
        (f"sbst-item-{n}", text) for n, (_, text) in enumerate(START_BACK_ITEMS, 1)]
    by_link = {i["linkId"]: i for i in sbst.resource["item"]}
    for n, (code, text) in enumerate(START_BACK_ITEMS, 1):
        assert by_link[f"sbst-item-{n}"]["code"] == [
            {"system": LOINC, "code": code, "display": text}]
    # Keele's instruction, shown with the questions and never answered
    assert prom_answers.instructions(sbst) == [
        "Thinking about the last 2 weeks please answer the following questions"]
    # the copyright statement is kept, with LOINC's terms
    assert "© Keele University 2007" in sbst.resource["copyright"]
    assert "https://www.keele.ac.uk/sbst/legal/" in sbst.resource["copyright"]
    assert sbst.wording_not_included is None and proms.not_for_patients(sbst) is None


def test_start_back_scores_carry_loinc_first(kb) -> None:
    by_link = {i["linkId"]: i for i in kb.instruments["keele-start-back"].resource["item"]}
    assert [(c["system"], c["code"]) for c in by_link["sbst-total"]["code"]] == [
        (LOINC, "91351-7")]
    assert [(c["system"], c["code"]) for c in by_link["sbst-psychosocial"]["code"]] == [
        (LOINC, "91350-9"), (f"{t.BASE}/CodeSystem/outcome-measures", "sbst-psychosocial")]
    assert [(c["system"], c["code"]) for c in by_link["sbst-risk"]["code"]] == [
        (LOINC, "91352-5"), (f"{t.BASE}/CodeSystem/outcome-measures", "sbst-risk")]
    # the risk group's results: LOINC answer list LL3578-3
    assert [o["valueCoding"] for o in by_link["sbst-risk"]["answerOption"]] == [
        {"system": LOINC, "code": "LA9194-7", "display": "Low"},
        {"system": LOINC, "code": "LA8982-6", "display": "Medium"},
        {"system": LOINC, "code": "LA9193-9", "display": "High"}]


def test_lefs_says_in_data_that_its_wording_is_not_included(kb) -> None:
    lefs = kb.instruments["lefs"]
    assert "Phys Ther 1999" in lefs.wording_not_included
    reason = proms.not_for_patients(lefs)
    assert reason.startswith("Lower Extremity Functional Scale (LEFS) cannot be handed to "
                             "the patient")
    assert "Fill it in with the patient from the owner's paper form" in reason
    # PSFS: the activities are the patient's own words; nothing is missing
    assert proms.not_for_patients(kb.instruments["psfs"]) is None


@pytest.mark.parametrize("value", [
    {"valueString": "  "}, {"valueBoolean": True}, {},
], ids=["blank", "not a string", "no value"])
def test_a_marker_without_a_place_for_the_wording_stops_start_up(tmp_path, value) -> None:
    def corrupt(root) -> None:  # type: ignore[no-untyped-def]
        path = root / "questionnaires" / "lefs.json"
        lefs = json.loads(path.read_text())
        lefs["extension"] = [{"url": t.EXT_ITEM_WORDING_NOT_INCLUDED, **value}]
        path.write_text(json.dumps(lefs))
    error = knowledge_copies.load_error(tmp_path, corrupt)
    assert str(error).endswith("lefs.json: extension: item-wording-not-included takes one "
                              "valueString: where the owner's wording is found")


def test_a_response_stored_with_the_retired_risk_code_is_rescored_to_loincs(kb) -> None:
    """A STarT Back finished before this change holds the project's old risk code: the
    server's recomputation (at signature, at $extract) gives LOINC's answer instead."""
    from plugin.core import scoring
    from tests.support.prom_cases import OM, start_back

    stored = start_back({1, 2, 3, 4, 5}, "extremely")  # total 6, distress 2: medium
    stored["item"].append({"linkId": "sbst-risk", "answer": [{"valueCoding": {
        "system": OM, "code": "sbst-risk-high", "display": "High risk"}}]})
    scored = scoring.score(kb.instruments["keele-start-back"], stored)
    assert [i["answer"] for i in scored["item"] if i["linkId"] == "sbst-risk"] == [[
        {"valueCoding": {"system": LOINC, "code": "LA8982-6", "display": "Medium"}}]]
