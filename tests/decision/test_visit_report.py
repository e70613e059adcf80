"""The follow-up's view: PROM totals beside the exam findings, interpreted with the
published minimal important change, and the handout's plain words."""
from __future__ import annotations

import datetime as dt

from plugin.decision import visit_report
from plugin.decision.episode import Visit

BEFORE = Visit("e-1", "initial", dt.date(2026, 10, 5), {"pain.current": 6}, None)
AFTER = Visit("e-2", "follow-up", dt.date(2026, 11, 2), {"pain.current": 6}, None)


def _lefs(total: int) -> dict:
    return {"resourceType": "QuestionnaireResponse", "status": "completed",
            "item": [{"linkId": "lefs-items", "item": []},
                     {"linkId": "lefs-total", "answer": [{"valueInteger": total}]}]}


def test_prom_totals_are_compared_with_their_interpretation(kb) -> None:
    meanings = kb.interpretations
    then = visit_report.prom_scores([_lefs(40)], meanings)
    now = visit_report.prom_scores([_lefs(52)], meanings)
    assert then == {"lefs-total": 40} and now == {"lefs-total": 52}
    view = visit_report.view(kb.decision.course, kb.return_to_sport, [BEFORE, AFTER],
                             proms=(then, now), meanings=meanings)
    lefs = next(r for r in view["rows"] if r["finding"] == "LEFS")
    assert (lefs["then"], lefs["now"], lefs["change"]) == ("40", "52", "improving")
    assert lefs["detail"] == "LEFS +12 since 5 October 2026: a meaningful improvement"
    small = visit_report.view(kb.decision.course, kb.return_to_sport, [BEFORE, AFTER],
                              proms=(then, {"lefs-total": 44}), meanings=meanings)
    assert next(r for r in small["rows"] if r["finding"] == "LEFS")["change"] == "not improving"


def test_the_handout_says_plainly_when_nothing_clearly_changed(kb) -> None:
    view = visit_report.view(kb.decision.course, kb.return_to_sport, [BEFORE, AFTER])
    assert view["improved"] == ["We did not find a clear change since your last visit.",
                                "Your clinician will talk with you about the next step."]
    worse = Visit("e-2", "follow-up", dt.date(2026, 11, 2), {"pain.current": 9}, None)
    lines = visit_report.view(kb.decision.course, kb.return_to_sport, [BEFORE, worse])["improved"]
    assert "Not better yet: your pain today." in lines


def test_a_single_visit_has_no_view(kb) -> None:
    assert visit_report.view(kb.decision.course, kb.return_to_sport, [BEFORE]) is None
