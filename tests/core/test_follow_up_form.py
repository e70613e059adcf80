"""The follow-up Questionnaire keeps its dictionary's contract
(questionnaires/follow-up-dictionary.md): every re-tested item is the initial exam's item
itself (same linkId, type, options, codes, units, ranges), so a finding lines up across
visits; its own items are exactly the dictionary's; its mappings take the shared items
from the initial exam's file (one home) and map the new ones to the project's codes; and
'neuro unchanged' records one coded answer, never per-item neuro Observations."""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugin import knowledge
from plugin.core import answers, observations
from plugin.core.questionnaire import Condition
from plugin.core.responses import Context, Exam
from plugin.decision import assessment, facts
from plugin.errors import AnswerError, KnowledgeError
from plugin.record import pipeline
from tests.core.test_knowledge import (BASE, MDIR, UCUM, VERIFIED, UCUM_UNITS, RENDERING, codings,
                                       _edit)
from tests.support import knowledge_copies

FOLLOW_UP = "posterior-thigh-follow-up"
CANONICAL = f"{BASE}/Questionnaire/{FOLLOW_UP}"
FU_FILE = f"questionnaires/{FOLLOW_UP}.json"
FU_MAP = f"mappings/observations/{FOLLOW_UP}.json"
SIDES = ("left", "right")
CRITERION = ("met", "not-met", "not-assessed")
GROUPS = ("patient", "history", "follow-up", "red-flags", "pain", "slr", "slump", "palpation",
          "hamstring-tests", "neuro", "return-to-sport")
#: The new items, written out by hand: linkId -> (type, options or (min, max, unit)).
NEW = {
    "neuro.since-last-visit": ("choice", ("unchanged", "changed")),
    "follow-up.adherence": ("choice", ("all", "most", "some", "none")),
    "follow-up.what-changed": ("text", None),
    "follow-up.global-rating": ("choice", ("improving", "unchanged", "worse")),
    "follow-up.note": ("text", None),
    **{f"return-to-sport.{c}": ("choice", CRITERION) for c in (
        "no-pain-palpation", "no-pain-strength-flexibility", "no-pain-functional",
        "similar-flexibility", "field-test-performance", "psychological-readiness",
        "shared-decision")},
    **{f"return-to-sport.h-test-angle.{s}": ("integer", (0, 180, "deg")) for s in SIDES},
    **{f"return-to-sport.h-test-insecurity.{s}": ("integer", (0, 100, None)) for s in SIDES},
    "return-to-sport.strength-deficit": ("decimal", (0, 100, "%")),
}
#: The re-tested items the contract (K2) names, shared with the initial exam.
SHARED_PREFIXES = ("patient.", "pain.", "slr.", "slump.", "palpation.",
                   "hamstring-tests.resisted-knee-flexion.", "neuro.power.", "neuro.sensation.",
                   "neuro.reflex.", "neuro.saddle-sensation", "red-flags.")
SHARED_HISTORY = {"history.affected-side", "history.pt-weeks", "history.injections",
                  "history.eswt", "history.imaging"}
CHANGED = Condition("neuro.since-last-visit", "=", "changed")


@pytest.fixture(scope="module")
def follow_up(kb):
    return kb.forms[FOLLOW_UP]


def _raw_items(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            found[item["linkId"]] = item
            walk(item.get("item") or [])
    walk(resource["item"])
    return found


def test_it_loads_under_its_canonical_and_groups_in_order(kb, follow_up) -> None:
    assert (follow_up.url, follow_up.version) == (CANONICAL, "1.0.0")
    assert kb.form_for(f"{CANONICAL}|1.0.0") is follow_up
    assert follow_up.top == GROUPS
    assert all(not follow_up.index[g].required for g in GROUPS)
    assert not any(i.required for i in follow_up.answerable)


def test_the_answerable_items_are_the_shared_ones_and_exactly_the_new_ones(form,
                                                                           follow_up) -> None:
    initial = {i.link_id for i in form.answerable}
    mine = {i.link_id for i in follow_up.answerable}
    assert mine - initial == set(NEW)
    expected_shared = {k for k in initial if k.startswith(SHARED_PREFIXES)} | SHARED_HISTORY
    assert mine & initial == expected_shared
    # every neuro item of the initial grid is there, and nothing the follow-up does not
    # re-test (the deep gluteal, SIJ and hip-drop tests, the history of the story so far)
    assert {k for k in initial if k.startswith("neuro.")} <= mine
    assert not {k for k in mine if k.startswith(("sij-tests.", "deep-gluteal-tests.",
                                                  "hip-drop.", "sitting.", "inspection."))}


def test_every_shared_item_is_the_initial_exams_item_unchanged(form, follow_up) -> None:
    """Same JSON: type, text, code, options, units, ranges, extraction flags; the neuro
    grid differs only by the enableWhen its group gains."""
    initial, mine = _raw_items(form.resource), _raw_items(follow_up.resource)
    shared = [i.link_id for i in follow_up.answerable if i.link_id not in NEW]
    assert len(shared) > 60
    for link_id in shared:
        gained = ("enableWhen", "enableBehavior") if link_id.startswith("neuro.") else ()
        assert {k: v for k, v in mine[link_id].items() if k not in gained} == \
            initial[link_id], link_id
        a, b = form.index[link_id], follow_up.index[link_id]
        assert (a.type, a.codes, a.options, a.unit, a.min_value, a.max_value, a.repeats) == \
               (b.type, b.codes, b.options, b.unit, b.min_value, b.max_value, b.repeats)


@pytest.mark.parametrize("link_id", sorted(NEW))
def test_each_new_item_has_its_type_range_options_and_own_code(follow_up, link_id) -> None:
    item = follow_up.index[link_id]
    type_, detail = NEW[link_id]
    assert item.type == type_
    if type_ == "choice":
        assert tuple(o.code for o in item.options) == detail
        assert all(o.coding["system"] == f"{BASE}/CodeSystem/exam-answers" for o in item.options)
        assert not item.repeats
    elif type_ in ("integer", "decimal"):
        low, high, unit = detail
        assert (item.min_value, item.max_value) == (low, high)
        assert (item.unit or {}).get("code") == unit
    if type_ != "text":
        side = link_id.rsplit(".", 1)[-1]
        code = link_id[: -len(side) - 1] if side in SIDES else link_id
        assert [(c["system"], c["code"]) for c in item.codes] == [
            (f"{BASE}/CodeSystem/exam-tests", code)]


def test_the_neuro_grid_applies_only_when_changed(follow_up) -> None:
    grid = [i for i in follow_up.answerable
            if i.link_id.startswith("neuro.") and i.link_id != "neuro.since-last-visit"]
    assert len(grid) == 17
    for item in grid:
        conditions = [c for a in (item, *follow_up.ancestors(item.link_id))
                      for c in a.enable_when]
        assert conditions == [CHANGED], item.link_id
    assert follow_up.index["neuro.since-last-visit"].enable_when == ()


def test_a_neuro_finding_with_unchanged_is_refused_by_linkid(follow_up) -> None:
    with pytest.raises(AnswerError) as caught:
        answers.load_plain(follow_up, {"neuro.since-last-visit": "unchanged",
                                       "neuro.power.l5.left": 4})
    assert "neuro.power.l5.left" in str(caught.value)
    assert "neuro.since-last-visit = changed" in str(caught.value)


def test_every_answerable_linkid_is_mapped_xor_not_extracted(kb, follow_up) -> None:
    mappings = kb.mappings_for(follow_up)
    answerable = {i.link_id for i in follow_up.answerable}
    assert set(mappings.by_link_id) | set(mappings.not_extracted) == answerable
    assert not set(mappings.by_link_id) & set(mappings.not_extracted)
    assert set(mappings.not_extracted) == {"patient.age-years", "follow-up.what-changed",
                                           "follow-up.note"}


def test_shared_items_become_the_initial_exams_observations(kb, form, follow_up) -> None:
    """Same code, category, value, unit, bodySite and laterality: an EHR trends them."""
    initial, mine = kb.mappings_for(form).by_link_id, kb.mappings_for(follow_up).by_link_id
    shared = [k for k in mine if k not in NEW]
    assert shared and all(mine[k] == initial[k] for k in shared)


def test_the_follow_up_mapping_file_lists_only_its_own_items() -> None:
    """One home: the shared linkIds are not copied into the follow-up's file."""
    data = json.loads((MDIR / "observations" / f"{FOLLOW_UP}.json").read_text(encoding="utf-8"))
    assert data["extends"] == "posterior-thigh-exam"
    listed = {o["linkId"] for o in data["observations"]} | {
        e["linkId"] for e in data["not_extracted"]}
    assert listed == set(NEW)


def test_every_new_sided_observation_carries_its_side(kb, follow_up) -> None:
    mappings = kb.mappings_for(follow_up).by_link_id
    for link_id in NEW:
        if link_id not in mappings:
            continue
        side = link_id.rsplit(".", 1)[-1]
        assert mappings[link_id].laterality == (side if side in SIDES else None), link_id
        if side in SIDES:
            assert mappings[link_id].body_site is not None


def test_every_code_of_the_follow_up_is_our_own_or_verified(kb, follow_up) -> None:
    own = {cs["url"]: {c["code"]: c.get("display") for c in cs["concept"]}
           for cs in kb.code_systems.values()}
    sources = {FU_FILE: follow_up.resource, FU_MAP: json.loads(
        (MDIR / "observations" / f"{FOLLOW_UP}.json").read_text(encoding="utf-8"))}
    for name, data in sources.items():
        for where, coding in codings(data, name):
            system, code, display = coding["system"], coding["code"], coding.get("display")
            if system.startswith(BASE):
                assert code in own.get(system, {}), f"{where}: {system}|{code} is not ours"
                assert display is None or display == own[system][code], where
            elif system == UCUM:
                assert code in UCUM_UNITS, where
            elif system in RENDERING:
                assert ".extension" in where, where
            else:
                assert code in VERIFIED.get(system, {}), f"{where}: {system}|{code} unverified"


def test_every_new_code_has_a_definition(kb) -> None:
    concepts = {c["code"]: c for cs in ("exam-answers", "exam-tests")
                for c in kb.code_systems[cs]["concept"]}
    new_tests = {k.rsplit(".", 1)[0] if k.endswith(SIDES) else k for k, (t, _) in NEW.items()
                 if t != "text"}
    new_answers = {"unchanged", "changed", "all", "most", "some", "improving", "worse", *CRITERION}
    for code in new_tests | new_answers:
        assert concepts[code].get("definition"), code


def _exam(follow_up: Any, data: dict[str, Any]) -> Exam:
    return Exam(follow_up, answers.load_plain(follow_up, data),
                Context(authored="2026-12-06T09:00:00+00:00",
                        subject={"reference": "Patient/p1"}))


def test_neuro_unchanged_is_one_observation_and_no_per_item_neuro(kb, follow_up) -> None:
    exam = _exam(follow_up, {"neuro.since-last-visit": "unchanged", "pain.current": 2})
    extracted = observations.extract(exam, kb.mappings_for(follow_up), {"reference": "QR/x"})
    neuro = [o for o in extracted if o["code"]["coding"][0]["code"].startswith("neuro.")]
    assert [o["code"]["coding"][0]["code"] for o in neuro] == ["neuro.since-last-visit"]
    assert neuro[0]["valueCodeableConcept"]["coding"][0]["code"] == "unchanged"


def test_neuro_changed_records_the_grid_as_the_initial_exam_does(kb, form, follow_up) -> None:
    data = {"neuro.power.l5.left": 4, "neuro.reflex.ankle.left": "reduced"}
    later = observations.extract(_exam(follow_up, {"neuro.since-last-visit": "changed", **data}),
                                 kb.mappings_for(follow_up), {"reference": "QR/x"})
    first = observations.extract(Exam(form, answers.load_plain(form, data), Context(
        authored="2026-12-06T09:00:00+00:00", subject={"reference": "Patient/p1"})),
        kb.mappings_for(form), {"reference": "QR/x"})
    strip = lambda o: {k: v for k, v in o.items() if k not in ("identifier",)}  # noqa: E731
    assert [strip(o) for o in later if o["code"]["coding"][0]["code"] != "neuro.since-last-visit"
            ] == [strip(o) for o in first]


def test_the_objective_tests_become_quantities_with_their_units(kb, follow_up) -> None:
    exam = _exam(follow_up, {"return-to-sport.h-test-angle.left": 75,
                             "return-to-sport.h-test-insecurity.left": 30,
                             "return-to-sport.strength-deficit": 12.5,
                             "return-to-sport.psychological-readiness": "not-met"})
    by_code = {o["code"]["coding"][0]["code"]: o for o in observations.extract(
        exam, kb.mappings_for(follow_up), {"reference": "QR/x"})}
    assert by_code["return-to-sport.h-test-angle"]["valueQuantity"] == {
        "value": 75, "unit": "°", "system": UCUM, "code": "deg"}
    assert by_code["return-to-sport.h-test-angle"]["bodySite"]["extension"][0][
        "valueCodeableConcept"]["text"] == "Left"
    assert by_code["return-to-sport.h-test-insecurity"]["valueInteger"] == 30
    assert by_code["return-to-sport.strength-deficit"]["valueQuantity"] == {
        "value": 12.5, "unit": "%", "system": UCUM, "code": "%"}
    assert by_code["return-to-sport.psychological-readiness"]["valueCodeableConcept"][
        "coding"][0]["code"] == "not-met"
    with pytest.raises(AnswerError, match="return-to-sport.strength-deficit"):
        answers.load_plain(follow_up, {"return-to-sport.strength-deficit": 100.5})


def test_assessing_a_follow_up_speaks_the_initial_exams_findings(kb, follow_up) -> None:
    """The engine speaks the shared linkIds: a positive SLR at a follow-up gets the
    radicular differential, a new red flag escalates."""
    radicular = pipeline.assess_answers(kb, answers.load_plain(follow_up, {
        "slr.left.onset-angle": 40, "slr.left.response": "leg-pain-below-knee",
        "history.affected-side": "left"}))
    assert radicular.differential[0].condition.id == "lumbar-radiculopathy"
    flagged = pipeline.assess_answers(kb, answers.load_plain(follow_up, {
        "red-flags.saddle-numbness": True, "neuro.since-last-visit": "unchanged"}))
    assert flagged.urgency == "emergency"


def test_an_ehr_sending_a_follow_ups_observations_gets_the_same_assessment(kb, form,
                                                                          follow_up) -> None:
    """CDS Hooks reads coded Observations with the initial exam's mappings: a follow-up's
    shared findings are read as the follow-up's answers; its own items (global rating,
    neuro unchanged, return to sport) are skipped, never an error."""
    exam = _exam(follow_up, {"slr.left.onset-angle": 40, "slr.left.response":
                             "leg-pain-below-knee", "neuro.since-last-visit": "unchanged",
                             "follow-up.global-rating": "worse", "pain.current": 5,
                             "return-to-sport.h-test-angle.left": 60})
    extracted = observations.extract(exam, kb.mappings_for(follow_up), {"reference": "QR/x"})
    from_ehr = facts.from_observations(form, kb.mappings_for(form), extracted)
    assert assessment.assess(kb.decision, from_ehr).as_json() == \
        pipeline.assess_answers(kb, exam.answers).as_json()


# --- Broken copies: the one-home rule is enforced at start-up ---------------------------


def _fu_map(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    return _edit(FU_MAP, change)


def _copy_shared_mapping(data: dict[str, Any]) -> None:
    initial = json.loads((MDIR / "observations" / "posterior-thigh-exam.json").read_text())
    data["observations"].append(copy.deepcopy(next(
        o for o in initial["observations"] if o["linkId"] == "pain.current")))


@pytest.mark.parametrize(("corrupt", "place", "problem"), [
    (_fu_map(_copy_shared_mapping), "pain.current", "already mapped by posterior-thigh-exam"),
    (_fu_map(lambda d: d.update(extends="nope")), "extends", "'nope' is not the mappings"),
    (_fu_map(lambda d: d.update(observations=[o for o in d["observations"] if o["linkId"] !=
                                              "follow-up.global-rating"])),
     "follow-up.global-rating", "must be either mapped or listed in not_extracted"),
], ids=["shared linkId copied", "unknown base", "new item unmapped"])
def test_a_broken_follow_up_mapping_stops_loading(tmp_path, corrupt, place, problem) -> None:
    root = knowledge_copies.copy(tmp_path)
    corrupt(root)
    with pytest.raises(KnowledgeError) as caught:
        knowledge.load(root / "questionnaires", root / "mappings")
    assert (caught.value.source, caught.value.path) == (str(root / FU_MAP), place)
    assert problem in caught.value.problem
