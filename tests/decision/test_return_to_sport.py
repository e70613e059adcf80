"""Return to sport: which consensus criteria a hamstring patient meets, visit by visit,
with the sources; never a verdict of fitness."""
from __future__ import annotations

import copy
import datetime as dt
import json
import re

import pytest

from plugin import knowledge
from plugin.config import DEFAULTS
from plugin.decision import return_to_sport as rts_mod
from plugin.decision.episode import Visit
from plugin.errors import KnowledgeError

ALL_MET = {f"return-to-sport.{c}": "met" for c in (
    "no-pain-palpation", "no-pain-strength-flexibility", "no-pain-functional",
    "similar-flexibility", "field-test-performance", "psychological-readiness",
    "shared-decision")}


def visit(answers: dict, date: dt.date, kind: str = "follow-up",
          top: str | None = "hamstring-strain") -> Visit:
    return Visit(f"exam-{date}", kind, date, answers, top)


@pytest.fixture()
def rts(kb):
    return kb.return_to_sport


def test_each_criterion_has_its_state_and_its_history_across_follow_ups(rts) -> None:
    first = visit({}, dt.date(2026, 3, 1), "initial")
    week3 = visit({"return-to-sport.no-pain-palpation": "met",
                   "return-to-sport.no-pain-functional": "not-met",
                   "return-to-sport.strength-deficit": 18.5}, dt.date(2026, 3, 22))
    week6 = visit({"return-to-sport.no-pain-palpation": "met",
                   "return-to-sport.no-pain-functional": "met",
                   "return-to-sport.similar-flexibility": "not-met",
                   "return-to-sport.psychological-readiness": "not-assessed",
                   "return-to-sport.h-test-angle.left": 72,
                   "return-to-sport.h-test-angle.right": 80,
                   "return-to-sport.strength-deficit": 8}, dt.date(2026, 4, 12))
    readiness = rts_mod.evaluate(rts, [first, week3, week6])
    states = {s.criterion.link_id: s for s in readiness.criteria}
    functional = states["return-to-sport.no-pain-functional"]
    assert functional.status == "met"
    assert [(v.date.day, s) for v, s in functional.history] == [(22, "not-met"), (12, "met")]
    assert states["return-to-sport.field-test-performance"].status == "not-assessed"
    assert readiness.summary == (
        "2 of 7 criteria met; not met: hamstring flexibility similar to the other side; "
        "not assessed: no pain during strength and flexibility testing, performance on "
        "field testing, psychological readiness, shared decision to return.")
    tests = {(t.test.link_id, t.side): [v for _, v in t.values] for t in readiness.tests}
    assert tests[("return-to-sport.h-test-angle.{side}", "left")] == [72]
    assert tests[("return-to-sport.strength-deficit", None)] == [18.5, 8]
    assert ("return-to-sport.h-test-insecurity.{side}", "left") not in tests


def test_it_never_declares_the_patient_fit_and_names_its_sources(rts) -> None:
    readiness = rts_mod.evaluate(rts, [visit(ALL_MET, dt.date(2026, 4, 12))])
    assert readiness.summary == "7 of 7 criteria met."
    words = " ".join([readiness.summary, readiness.shared_decision,
                      *(c.text for c in rts.criteria), *(t.caveat for t in rts.tests)])
    assert not re.search(r"\b(fit|cleared|clearance given|ready to play)\b", words, re.I)
    assert "van der Horst" in readiness.source and "2017;51:1583" in readiness.source
    assert "shared between the clinician and the patient" in readiness.shared_decision
    caveats = {t.link_id: t.caveat for t in rts.tests}
    assert "58 %" in caveats["return-to-sport.h-test-angle.{side}"]
    assert "10 %" in caveats["return-to-sport.strength-deficit"] and \
        "Tol" in caveats["return-to-sport.strength-deficit"]


def test_nothing_recorded_gives_no_checklist(rts) -> None:
    assert rts_mod.evaluate(rts, [visit({"pain.current": 3}, dt.date(2026, 4, 12))]) is None


def test_shown_only_for_a_hamstring_injury(rts) -> None:
    day = dt.date(2026, 4, 12)
    assert rts_mod.applies(rts, [visit({}, day, top="hamstring-strain")])
    assert not rts_mod.applies(rts, [visit({}, day, top="lumbar-radiculopathy")])
    assert rts_mod.applies(rts, [visit({}, day, top="lumbar-radiculopathy")],
                           impression=["proximal-hamstring-avulsion"])


def test_the_criteria_cover_the_consensus_items_of_the_follow_up(rts) -> None:
    assert [c.link_id for c in rts.criteria] == list(ALL_MET)
    assert set(rts_mod.link_ids(rts)) == {*ALL_MET, "return-to-sport.strength-deficit",
                                          *(f"return-to-sport.h-test-{t}.{s}"
                                            for t in ("angle", "insecurity")
                                            for s in ("left", "right"))}


def test_a_broken_criteria_file_stops_start_up(tmp_path) -> None:
    mappings = tmp_path / "mappings"
    import shutil
    shutil.copytree(DEFAULTS["MAPPINGS_DIR"], mappings)
    path = mappings / "decision" / "return-to-sport.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    broken = copy.deepcopy(data)
    broken["conditions"] = ["hamstring-strian"]
    path.write_text(json.dumps(broken), encoding="utf-8")
    with pytest.raises(KnowledgeError, match="hamstring-strian"):
        knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], mappings)
    broken = copy.deepcopy(data)
    del broken["criteria"][0]["consensus"]
    path.write_text(json.dumps(broken), encoding="utf-8")
    with pytest.raises(KnowledgeError, match="consensus"):
        knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], mappings)
