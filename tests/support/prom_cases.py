"""Hand-checked scoring examples for the shipped outcome measures.

Why one place: the product's scorer (tests/core/test_scoring.py) and LHC-Forms
(tests/browser/test_lforms_scoring.py) are given exactly these answers, so "the same
Questionnaire and answers give the same scores" is tested on the hand-checked cases.
Each expected value was worked out by hand from the published scoring rules
(questionnaires/README.md): None means the instrument is not scored for those answers.
"""
from __future__ import annotations

from typing import Any

OM = "http://posterior-thigh-exam.org/fhir/CodeSystem/outcome-measures"
LOINC = "http://loinc.org"
BASE = "http://posterior-thigh-exam.org/fhir/Questionnaire"


def response(instrument: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": f"{BASE}/{instrument}|1.0.0", "subject": {"reference": "Patient/p1"},
            "authored": "2026-12-06T09:00:00Z", "item": items}


def coded(link_id: str, code: str) -> dict[str, Any]:
    return {"linkId": link_id, "answer": [{"valueCoding": {"system": OM, "code": code}}]}


def lefs(ratings: dict[int, int]) -> dict[str, Any]:
    """LEFS answers: {item number: rating 0-4}."""
    return response("lefs", [coded(f"lefs-item-{n}", f"lefs-{r}") for n, r in sorted(ratings.items())])


def psfs(ratings: list[int]) -> dict[str, Any]:
    """PSFS answers: one named activity per rating, in order."""
    items = []
    for n, rating in enumerate(ratings, 1):
        items.append({"linkId": f"psfs-activity-{n}", "answer": [{"valueString": f"activity {n}"}]})
        items.append({"linkId": f"psfs-score-{n}", "answer": [{"valueInteger": rating}]})
    return response("psfs", items)


def start_back(agree: set[int], bother: str | None, answered: range = range(1, 9)) -> dict[str, Any]:
    """STarT Back answers: items 1-8 agree if in ``agree`` (else disagree); item 9 ``bother``."""
    items = [coded(f"sbst-item-{n}", "sbst-agree" if n in agree else "sbst-disagree")
             for n in answered]
    if bother is not None:
        items.append(coded("sbst-item-9", f"sbst-bother-{bother}"))
    return response("keele-start-back", items)


#: LOINC answer list LL3578-3 of 91352-5 "STarT Back Screening risk level" (loinc.org).
RISK_LEVELS = {"low": "LA9194-7", "medium": "LA8982-6", "high": "LA9193-9"}


def _risk(level: str) -> dict[str, str]:
    return {"system": LOINC, "code": RISK_LEVELS[level], "display": level.capitalize()}


#: instrument -> [(label, response, {score linkId: expected value})]
CASES: dict[str, list[tuple[str, dict[str, Any], dict[str, Any]]]] = {
    "lefs": [
        ("minimum: every item 0", lefs({n: 0 for n in range(1, 21)}), {"lefs-total": 0}),
        ("maximum: every item 4", lefs({n: 4 for n in range(1, 21)}), {"lefs-total": 80}),
        # ratings 1,2,3,4,0 repeated four times: 4 x 10 = 40
        ("mixed", lefs({n: n % 5 for n in range(1, 21)}), {"lefs-total": 40}),
        ("19 of 20 answered: not scored", lefs({n: 4 for n in range(1, 20)}), {"lefs-total": None}),
        ("nothing answered", lefs({}), {"lefs-total": None}),
    ],
    "psfs": [
        ("minimum: one activity at 0", psfs([0]), {"psfs-mean": 0}),
        ("maximum: five activities at 10", psfs([10] * 5), {"psfs-mean": 10}),
        ("three activities: 17 / 3", psfs([3, 5, 9]), {"psfs-mean": 5.67}),
        ("two activities: 9 / 2", psfs([2, 7]), {"psfs-mean": 4.5}),
        ("no activity rated", psfs([]), {"psfs-mean": None}),
    ],
    "keele-start-back": [
        ("minimum: all disagree, not at all", start_back(set(), "not-at-all"),
         {"sbst-total": 0, "sbst-psychosocial": 0, "sbst-risk": _risk("low")}),
        ("total 3 with subscale 3 is low (the total decides first)",
         start_back({5, 6, 7}, "slightly"),
         {"sbst-total": 3, "sbst-psychosocial": 3, "sbst-risk": _risk("low")}),
        ("total 4, subscale 0: medium", start_back({1, 2, 3, 4}, "moderately"),
         {"sbst-total": 4, "sbst-psychosocial": 0, "sbst-risk": _risk("medium")}),
        ("total 7, subscale 3: medium", start_back({1, 2, 3, 4, 5, 6}, "very-much"),
         {"sbst-total": 7, "sbst-psychosocial": 3, "sbst-risk": _risk("medium")}),
        ("total 6, subscale 4: high", start_back({1, 2, 5, 6, 7}, "very-much"),
         {"sbst-total": 6, "sbst-psychosocial": 4, "sbst-risk": _risk("high")}),
        ("maximum: all agree, extremely", start_back(set(range(1, 9)), "extremely"),
         {"sbst-total": 9, "sbst-psychosocial": 5, "sbst-risk": _risk("high")}),
        ("item 9 unanswered: not scored", start_back(set(range(1, 9)), None),
         {"sbst-total": None, "sbst-psychosocial": None, "sbst-risk": None}),
        ("item 3 unanswered: not scored", start_back({1, 2}, "extremely", range(4, 9)),
         {"sbst-total": None, "sbst-psychosocial": None, "sbst-risk": None}),
    ],
}


def answers_of(scored: dict[str, Any], link_ids: set[str]) -> dict[str, Any]:
    """{score linkId: its value or None} from a scored QuestionnaireResponse."""
    found: dict[str, Any] = {link_id: None for link_id in link_ids}
    for item in scored.get("item") or []:
        if item["linkId"] in link_ids and item.get("answer"):
            (value,) = item["answer"][0].values()
            found[item["linkId"]] = value
    return found


def plain_answers(response_: dict[str, Any]) -> dict[str, Any]:
    """The tablet's plain answers (linkId -> code, number or text) of a response."""
    found: dict[str, Any] = {}
    for item in response_.get("item") or []:
        if item.get("answer"):
            (value,) = item["answer"][0].values()
            found[item["linkId"]] = value["code"] if isinstance(value, dict) else value
    return found


def add_finished(store: Any, kb: Any, exam: Any, patient: Any, response_: dict[str, Any], *,
                 now: Any, by: Any) -> Any:
    """Add the response's instrument to the visit and finish it with its answers, as the
    tablet does (``record.proms``: add, save, finish); a score it carries is dropped."""
    from plugin.record import proms
    instrument = kb.instrument_for(response_["questionnaire"])
    prom = proms.add(store, kb, exam, patient, instrument.id, now=now, by=by)
    prom, _ = proms.save(store, kb, prom, patient, expected_version=prom.version,
                         answers=plain_answers(response_), now=now, by=by)
    return proms.finish(store, kb, prom, patient, expected_version=prom.version, now=now,
                        by=by)
