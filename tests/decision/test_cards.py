"""CDS Hooks cards from the engine (plugin/decision/cards.py), without an app.

Observations come from the product's own extraction of the golden cases, as an EHR
would hold them after delivery, and go back in through the Observation mappings.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from plugin import __version__
from plugin.core import fhir_models
from plugin.record import pipeline
from plugin.core import terminology as t
from plugin.decision import cards
from plugin.decision.assessment import assess

CASES = Path(__file__).resolve().parents[1] / "data" / "cases"
LUMBAR_MRI = {"system": "http://loinc.org", "code": "24968-0", "display": "MR Lumbar spine"}


def case(name: str) -> dict[str, Any]:
    return json.loads((CASES / f"{name}.json").read_text(encoding="utf-8"))


def observations(kb: Any, data: dict[str, Any], *, answers: dict[str, Any] | None = None
                 ) -> list[dict[str, Any]]:
    """The case's Observations as our extraction makes them, with server ids."""
    bundle = pipeline.extract(kb, {**data["answers"], **(answers or {})},
                              patient=data["patient"],
                              now=dt.datetime.fromisoformat(data["authored"]),
                              plugin_version=__version__)
    found = [e["resource"] for e in bundle["entry"]
             if e["resource"]["resourceType"] == "Observation"]
    return [dict(o, id=f"obs-{n}") for n, o in enumerate(found)]


def recorded(kb: Any, data: dict[str, Any], **kw: Any) -> cards.RecordedExam:
    form = kb.forms["posterior-thigh-exam"]
    exam = cards.exam_facts(form, kb.mappings_for(form), observations(kb, data, **kw),
                            patient_id=data["patient"]["id"], patient=data["patient"])
    assert exam is not None
    return exam


def card_list(kb: Any, name: str) -> list[dict[str, Any]]:
    data = case(name)
    exam = recorded(kb, data)
    return cards.assessment_cards(
        kb.decision, assess(kb.decision, exam.facts),
        subject={"reference": f"Patient/{data['patient']['id']}"}, encounter=None,
        exam_id=exam.exam_id or "x", authored="2026-12-01T10:00:00+00:00",
        recorded=exam.recorded)


def draft_orders(*codings: dict[str, str]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "ServiceRequest", "id": f"sr-{n}", "status": "draft",
                      "intent": "order", "code": {"coding": [c]},
                      "subject": {"reference": "Patient/p"}}}
        for n, c in enumerate(codings)]}


def assert_valid_card(card: dict[str, Any], *, cited: bool = True) -> None:
    assert len(card["summary"]) < 140, card["summary"]
    assert card["indicator"] in cards.INDICATORS
    assert card["source"]["label"]
    assert "suggestion" in card["detail"]
    assert ("Sources:" in card["detail"]) is cited
    assert card["uuid"]
    if card.get("suggestions"):
        assert card["selectionBehavior"] in ("at-most-one", "any")
        for suggestion in card["suggestions"]:
            assert suggestion["label"] and suggestion["uuid"]
            for action in suggestion["actions"]:
                assert action["type"] in ("create", "update", "delete") and action["description"]


# --- reading the exam back -----------------------------------------------------------

def test_the_recorded_exam_is_read_back_whole(kb) -> None:
    data = case("disc-radiculopathy-2-weeks-severe")
    exam = recorded(kb, data)
    assert exam.recorded == dt.datetime.fromisoformat(data["authored"])
    assert exam.exam_id and "/" not in exam.exam_id
    assert exam.facts.age == 38  # from the Patient's birthDate on the exam date
    assert exam.facts.affected_side == "left"


def test_observations_of_another_patient_or_another_system_are_ignored(kb) -> None:
    data = case("disc-radiculopathy-2-weeks-severe")
    form = kb.forms["posterior-thigh-exam"]
    obs = observations(kb, data)
    other = [dict(o, subject={"reference": "Patient/someone-else"}) for o in obs]
    foreign = {"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": t.LOINC, "code": "8867-4"}]},
               "subject": {"reference": f"Patient/{data['patient']['id']}"}}
    assert cards.exam_facts(form, kb.mappings_for(form), [*other, foreign],
                            patient_id=data["patient"]["id"]) is None


def test_the_latest_of_two_exams_is_read_not_a_mixture(kb) -> None:
    data = case("disc-radiculopathy-2-weeks-severe")
    later = dict(data, authored="2026-12-20T09:00:00+01:00")
    old = observations(kb, data)
    new = observations(kb, later, answers={"history.duration": {"value": 7, "unit": "wk"}})
    form = kb.forms["posterior-thigh-exam"]
    exam = cards.exam_facts(form, kb.mappings_for(form), [*new, *old],
                            patient_id=data["patient"]["id"])
    assert exam is not None and exam.recorded == dt.datetime.fromisoformat(later["authored"])
    assert exam.facts.answers["history.duration"][0].value == 7


def test_time_since_the_exam_is_added_to_the_duration(kb) -> None:
    exam = recorded(kb, case("disc-radiculopathy-2-weeks-severe"))
    assert exam.recorded is not None
    aged = cards.facts_on(exam.facts, exam.recorded, exam.recorded + dt.timedelta(weeks=3))
    assert aged.answers["history.duration"][0].value == 35  # 2 weeks + 3 weeks, in days
    assert cards.facts_on(exam.facts, exam.recorded, exam.recorded) is exam.facts


# --- patient-view cards --------------------------------------------------------------

def test_the_launch_card_is_a_smart_link(kb) -> None:
    card = cards.launch_card("https://app.example/launch", kb.decision, has_exam=False)
    assert_valid_card(card, cited=False)  # an offer to examine, no advice to source
    assert card["indicator"] == "info"
    assert card["links"] == [{"label": "Open the posterior thigh exam",
                              "url": "https://app.example/launch", "type": "smart"}]


def test_cauda_equina_gives_a_critical_card_first_with_emergency_referrals(kb) -> None:
    found = card_list(kb, "cauda-equina-red-flags")
    for card in found:
        assert_valid_card(card)
    first = found[0]
    assert first["indicator"] == "critical"
    assert "cauda equina" in first["summary"].lower()
    assert first["source"]["topic"]["code"] == "cauda-equina-syndrome"
    requests = [a["resource"] for s in first["suggestions"] for a in s["actions"]]
    codes = {c["code"] for r in requests for c in r["code"]["coding"]}
    assert {"emergency-department", "mri-lumbar-spine"} <= codes
    assert all(r["priority"] == "stat" for r in requests)


def test_an_urgent_red_flag_is_a_warning(kb) -> None:
    found = card_list(kb, "sprinter-proximal-avulsion")
    assert found[0]["indicator"] == "warning"
    assert "avulsion" in found[0]["summary"].lower()


def test_a_hamstring_case_gets_a_differential_card(kb) -> None:
    found = card_list(kb, "triathlete-proximal-hamstring-tendinopathy")
    assert [c["indicator"] for c in found] == ["info"]
    card = found[0]
    assert_valid_card(card)
    assert "Proximal hamstring tendinopathy" in card["summary"]
    assert "Key findings for it:" in card["detail"]
    assert card["source"]["topic"]["code"] == "proximal-hamstring-tendinopathy"


@pytest.mark.parametrize("name", ["cauda-equina-red-flags", "sprinter-proximal-avulsion",
                                  "disc-radiculopathy-8-weeks-severe",
                                  "triathlete-proximal-hamstring-tendinopathy"])
def test_every_suggested_service_request_is_a_valid_draft_proposal(kb, name: str) -> None:
    requests = [a["resource"] for c in card_list(kb, name) for s in c.get("suggestions", [])
                for a in s["actions"]]
    assert requests
    for resource in requests:
        assert fhir_models.validate(resource) == []
        assert (resource["status"], resource["intent"]) == ("draft", "proposal")
        assert resource["subject"] == {"reference": f"Patient/{case(name)['patient']['id']}"}
        for reason in resource.get("reasonReference", []):
            assert reason["reference"].startswith("Observation/obs-")  # the EHR's own


def test_summaries_stay_under_140_characters() -> None:
    long = cards._short("word " * 60)
    assert len(long) < 140 and long.endswith("…")


# --- the MRI check -------------------------------------------------------------------

def _mri_cards(kb: Any, name: str, *, after: dt.timedelta = dt.timedelta(0),
               orders: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
    exam = recorded(kb, case(name), **kw)
    assert exam.recorded is not None
    return cards.check_mri_order(kb.decision, exam, orders or draft_orders(LUMBAR_MRI),
                                 now=exam.recorded + after, reasons=_reasons(kb))


def _reasons(kb: Any) -> tuple[dict[str, str], ...]:
    return cards.override_reasons(kb.code_systems[cards.OVERRIDE_REASONS])


def test_early_lumbar_mri_for_radicular_pain_without_red_flags_warns(kb) -> None:
    found = _mri_cards(kb, "disc-radiculopathy-2-weeks-severe")
    assert len(found) == 1
    card = found[0]
    assert_valid_card(card)
    assert card["indicator"] == "warning"
    assert card["summary"] == ("Lumbar MRI before 6 weeks of radicular pain without red "
                               "flags rarely changes care")
    assert "Chou R" in card["detail"] and "NICE NG59" in card["detail"]
    code_system = kb.code_systems[cards.OVERRIDE_REASONS]
    assert card["overrideReasons"] == [
        {"system": code_system["url"], "code": c["code"], "display": c["display"]}
        for c in code_system["concept"]]
    assert card["suggestions"][0]["actions"] == [
        {"type": "delete", "description": "Remove the draft lumbar MRI order",
         "resourceId": "ServiceRequest/sr-0"}]


@pytest.mark.parametrize("coding", [
    {"system": "http://loinc.org", "code": "30679-5"},
    {"system": "http://loinc.org", "code": "24967-2"},
    {"system": t.DECISION_SUPPORT, "code": "mri-lumbar-spine"}])
def test_other_lumbar_mri_codes_are_recognised(kb, coding: dict[str, str]) -> None:
    assert _mri_cards(kb, "disc-radiculopathy-2-weeks-severe", orders=draft_orders(coding))


def test_other_orders_get_no_card(kb) -> None:
    thigh = {"system": "http://loinc.org", "code": "24702-3", "display": "MR Thigh"}
    assert _mri_cards(kb, "disc-radiculopathy-2-weeks-severe", orders=draft_orders(thigh)) == []


def test_no_warning_once_the_pain_has_persisted(kb) -> None:
    assert _mri_cards(kb, "disc-radiculopathy-8-weeks-severe") == []


def test_no_warning_when_the_exam_is_old_enough_that_the_pain_has_now_persisted(kb) -> None:
    assert _mri_cards(kb, "disc-radiculopathy-2-weeks-severe", after=dt.timedelta(weeks=5)) == []
    assert _mri_cards(kb, "disc-radiculopathy-2-weeks-severe", after=dt.timedelta(weeks=3))


def test_no_warning_with_a_red_flag(kb) -> None:
    assert _mri_cards(kb, "disc-radiculopathy-2-weeks-severe",
                      answers={"red-flags.saddle-numbness": True,
                               "red-flags.bladder-dysfunction": True,
                               "neuro.saddle-sensation": "reduced"}) == []


def test_no_warning_without_radicular_findings(kb) -> None:
    assert _mri_cards(kb, "triathlete-proximal-hamstring-tendinopathy") == []


def test_no_warning_without_an_exam(kb) -> None:
    assert cards.check_mri_order(kb.decision, None, draft_orders(LUMBAR_MRI),
                                 now=dt.datetime.now(dt.timezone.utc),
                                 reasons=_reasons(kb)) == []


def test_the_threshold_is_the_configured_one(kb) -> None:
    """A stricter local threshold (8 weeks) changes the wording and the decision."""
    from plugin import knowledge
    from plugin.config import DEFAULTS
    thresholds = {**DEFAULTS["DECISION_THRESHOLDS"], "MRI_RADICULAR_PERSISTENCE_WEEKS": 10}
    strict = knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], DEFAULTS["MAPPINGS_DIR"], thresholds)
    found = _mri_cards(strict, "disc-radiculopathy-8-weeks-severe")
    assert [c["summary"] for c in found] == [
        "Lumbar MRI before 10 weeks of radicular pain without red flags rarely changes care"]


def test_the_differential_card_says_why_a_diagnosis_of_exclusion_ranks_lower(kb) -> None:
    found = card_list(kb, "mixed-deep-gluteal-and-hamstring-origin-clusters")
    (info,) = [c for c in found if c["indicator"] == "info"]
    assert "**Proximal hamstring tendinopathy**" in info["detail"]
    assert "Deep gluteal syndrome" in info["detail"]
    assert "Ranked below Proximal hamstring tendinopathy" in info["detail"]


def test_the_avulsion_card_rests_on_proximal_findings(kb) -> None:
    found = card_list(kb, "splits-proximal-tenderness-no-gap-day-one")
    (flag,) = [c for c in found if c["indicator"] == "warning"]
    assert "Suspected complete proximal hamstring avulsion" in flag["summary"]
    assert "- Suspected complete proximal avulsion (left)" in flag["detail"]
    assert "only with proximal localisation" in flag["detail"]  # the rule, in words
    assert not [c for c in card_list(kb, "sprinter-mid-belly-strain-bruising-weakness")
                if c["indicator"] != "info"]
