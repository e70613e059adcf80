"""Outcome measures are scored from their own Questionnaire, and a client's score is never used.

Why: the scoring rules are data (itemWeight, calculatedExpression) so a renderer such as
LHC-Forms and the product compute the same score (tests/browser/test_lforms_scoring.py
runs the same cases there), and a clinic can add an instrument without code changes.
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from plugin import knowledge
from plugin.config import DEFAULTS
from plugin.core import scoring
from plugin.errors import KnowledgeError
from tests.support.prom_cases import CASES, OM, answers_of, lefs, start_back

ROOT = Path(__file__).resolve().parents[2]
QDIR, MDIR = ROOT / "questionnaires", ROOT / "mappings"
DROP_IN = ROOT / "tests" / "data" / "prom-drop-in" / "morning-stiffness-check.json"
TOY = "http://clinic.example.org/fhir/CodeSystem/toy"


@pytest.fixture(scope="module")
def kb() -> knowledge.KnowledgeBase:
    return knowledge.load(QDIR, MDIR)


@pytest.mark.parametrize(("instrument", "label", "response", "expected"),
                         [(k, *case) for k, cases in CASES.items() for case in cases],
                         ids=[f"{k}: {c[0]}" for k, cases in CASES.items() for c in cases])
def test_hand_checked_scores(kb, instrument, label, response, expected) -> None:
    scored = scoring.score(kb.instruments[instrument], response)
    assert answers_of(scored, set(expected)) == expected


@pytest.mark.parametrize("instrument", sorted(CASES))
def test_the_server_scores_are_the_calculated_expressions(kb, instrument) -> None:
    """score() writes exactly what each calculatedExpression gives (fhirpathpy, weight())."""
    from fhirpathpy import evaluate
    from fhirpathpy.models import models
    inst = kb.instruments[instrument]
    weights = {f"{s}|{c}": w for (s, c), w in inst.weights.items()}
    table = {"weight": {"fn": lambda codings: [weights[f"{c['system']}|{c['code']}"]
                                                for c in codings]}}
    for _, response, expected in CASES[instrument]:
        scored = scoring.score(inst, response)
        for item in inst.resource["item"]:
            ext = scoring._calculated(item)
            if ext is None:
                continue
            raw = evaluate(response, ext["valueExpression"]["expression"],
                           {"resource": response, "questionnaire": inst.resource},
                           models["r4"], {"userInvocationTable": table})
            value = answers_of(scored, {item["linkId"]})[item["linkId"]]
            assert ([] if value is None else [value]) == [
                v if isinstance(v, dict) else pytest.approx(float(v)) for v in raw]


def test_a_client_score_is_overwritten(kb) -> None:
    sent = lefs({n: 0 for n in range(1, 21)})
    sent["item"].append({"linkId": "lefs-total", "answer": [{"valueInteger": 80}]})
    scored = scoring.score(kb.instruments["lefs"], sent)
    assert [i["answer"] for i in scored["item"] if i["linkId"] == "lefs-total"] == \
        [[{"valueInteger": 0}]]
    assert sent["item"][-1]["answer"] == [{"valueInteger": 80}]  # the input is not changed


def test_a_client_score_is_removed_when_not_scorable(kb) -> None:
    sent = start_back({1, 2}, None)
    sent["item"].append({"linkId": "sbst-risk", "answer": [{"valueCoding": {
        "system": "http://loinc.org", "code": "LA9194-7"}}]})
    scored = scoring.score(kb.instruments["keele-start-back"], sent)
    assert "sbst-risk" not in {i["linkId"] for i in scored["item"]}
    assert len(scored["item"]) == 8


@pytest.mark.parametrize(("change", "problem"), [
    (lambda qr: qr["item"][0]["answer"][0]["valueCoding"].update(code="lefs-5"),
     "lefs-item-1: .lefs-5. is not one of its answer options"),
    (lambda qr: qr["item"][0]["answer"][0].update(valueCoding={"system": OM, "code": "sbst-agree"}),
     "lefs-item-1: .sbst-agree. is not one"),
    (lambda qr: qr["item"][0].update(answer=[{"valueInteger": 4}]), "is not one of its"),
    (lambda qr: qr["item"].append({"linkId": "lefs-item-21", "answer": [{"valueCoding": {
        "system": OM, "code": "lefs-4"}}]}), "lefs-item-21: not an item of lefs"),
], ids=["unknown code", "another item's code", "not a coding", "unknown item"])
def test_answers_that_would_change_a_score_silently_are_refused(kb, change, problem) -> None:
    sent = lefs({n: 4 for n in range(1, 21)})
    change(sent)
    with pytest.raises(scoring.ScoringError, match=problem):
        scoring.score(kb.instruments["lefs"], sent)


def test_the_scored_response_keeps_the_questionnaire_order(kb) -> None:
    sent = start_back({5}, "extremely")
    sent["item"].reverse()
    scored = scoring.score(kb.instruments["keele-start-back"], sent)
    assert [i["linkId"] for i in scored["item"]] == [
        *(f"sbst-item-{n}" for n in range(1, 10)), "sbst-total", "sbst-psychosocial", "sbst-risk"]


def test_every_shipped_instrument_keeps_its_copyright(kb) -> None:
    assert "Keele University" in kb.instruments["keele-start-back"].resource["copyright"]
    assert "Binkley" in kb.instruments["lefs"].resource["copyright"]
    assert "Stratford" in kb.instruments["psfs"].resource["copyright"]


# --- A clinic's own instrument: dropped in, no code changes --------------------------------


@pytest.fixture()
def clinic_copy(tmp_path: Path) -> Path:
    shutil.copytree(DEFAULTS["QUESTIONNAIRES_DIR"], tmp_path / "questionnaires")
    shutil.copytree(DEFAULTS["MAPPINGS_DIR"], tmp_path / "mappings")
    shutil.copy(DROP_IN, tmp_path / "questionnaires" / DROP_IN.name)
    return tmp_path


def _toy(answers: dict[str, Any]) -> dict[str, Any]:
    items = [{"linkId": k, "answer": [{"valueCoding": {"system": TOY, "code": v}}
                                      if isinstance(v, str) else {"valueInteger": v}]}
             for k, v in answers.items()]
    return {"resourceType": "QuestionnaireResponse", "status": "completed", "item": items}


def test_a_dropped_in_instrument_loads_and_scores(clinic_copy) -> None:
    kb = knowledge.load(clinic_copy / "questionnaires", clinic_copy / "mappings")
    inst = kb.instruments["morning-stiffness-check"]
    assert set(kb.forms) == {"posterior-thigh-exam", "posterior-thigh-follow-up"}  # untouched
    assert kb.instrument_for(inst.url) is inst
    # yes (2) + 3 = 5; yes + yes + 3 = 7; one item only: fewer than 2 answered
    assert scoring.scores(inst, _toy({"stiff-1": "yes", "stiff-3": 3})) == {"stiff-total": 5}
    assert scoring.scores(inst, _toy({"stiff-1": "yes", "stiff-2": "yes", "stiff-3": 3})) == \
        {"stiff-total": 7}
    assert scoring.scores(inst, _toy({"stiff-2": "no", "stiff-3": 0})) == {"stiff-total": 0}
    assert scoring.scores(inst, _toy({"stiff-1": "yes"})) == {"stiff-total": None}


def _break(copy_dir: Path, change) -> None:
    path = copy_dir / "questionnaires" / DROP_IN.name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _expression(data: dict[str, Any]) -> dict[str, Any]:
    return data["item"][3]["extension"][0]["valueExpression"]


@pytest.mark.parametrize(("change", "problem"), [
    (lambda d: d["item"][0]["answerOption"][0].pop("extension"), "has no itemWeight"),
    (lambda d: d["item"][1]["answerOption"][0]["extension"][0].update(valueDecimal=3),
     "two different weights"),
    (lambda d: _expression(d).update(expression="%resource.item.answer.value.frobnicate()"),
     "calculatedExpression fails"),
    (lambda d: _expression(d).update(expression="%resource.item.("), "does not parse"),
    (lambda d: _expression(d).update(language="text/cql"), "text/fhirpath"),
    (lambda d: d["item"][3].pop("readOnly"), "readOnly"),
    (lambda d: d["item"][3].update(initial=[{"valueInteger": 1}]), "readOnly"),
    (lambda d: d["item"][3].update(type="date"), "cannot be 'date'"),
], ids=["weightless option", "two weights", "unknown function", "syntax", "language",
        "not readOnly", "initial", "type"])
def test_a_broken_drop_in_stops_loading_naming_file_and_item(clinic_copy, change,
                                                             problem) -> None:
    _break(clinic_copy, change)
    with pytest.raises(KnowledgeError) as raised:
        knowledge.load(clinic_copy / "questionnaires", clinic_copy / "mappings")
    message = str(raised.value)
    assert DROP_IN.name in message and problem in message


def test_a_drop_in_with_an_unknown_project_code_stops_loading(clinic_copy) -> None:
    def change(d: dict[str, Any]) -> None:
        d["item"][3]["code"] = [{"system": OM, "code": "no-such-score", "display": "x"}]
    _break(clinic_copy, change)
    with pytest.raises(KnowledgeError, match="'no-such-score' is not in"):
        knowledge.load(clinic_copy / "questionnaires", clinic_copy / "mappings")


def test_an_unscored_response_is_not_changed_beyond_the_scores(kb) -> None:
    sent = lefs({1: 4, 2: 3})
    before = copy.deepcopy(sent)
    scored = scoring.score(kb.instruments["lefs"], sent)
    assert scored == before and sent == before
