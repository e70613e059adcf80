"""The tablet review's "Since last visit" panel and return-to-sport checklist: the same
words as the summary (decision/visit_report.py), escaped, never a verdict of fitness."""
from __future__ import annotations

import datetime as dt
import re

from flask import render_template

from plugin.decision import visit_report
from plugin.decision.episode import Visit

FIRST = Visit("e-1", "initial", dt.date(2026, 10, 5),
              {"pain.current": 3, "pain.worst-week": 6,
               "hamstring-tests.resisted-knee-flexion.right": "painful"}, "hamstring-strain")
NOW = Visit("e-2", "follow-up", dt.date(2026, 11, 2),
            {"pain.current": 0, "pain.worst-week": 1, "neuro.since-last-visit": "unchanged",
             "hamstring-tests.resisted-knee-flexion.right": "strong-painfree",
             "return-to-sport.no-pain-palpation": "met",
             "return-to-sport.field-test-performance": "not-met",
             "return-to-sport.h-test-angle.right": 72}, None)


def _panel(app, kb, episode) -> str:
    with app.test_request_context():
        return render_template("exam/_since_last_visit.html", episode=episode)


def test_the_panel_shows_each_finding_then_and_now_and_the_checklist(app, kb) -> None:
    html = _panel(app, kb, visit_report.view(kb.decision.course, kb.return_to_sport,
                                             [FIRST, NOW]))
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "5 October 2026 (initial exam) → 2 November 2026 (follow-up)" in text
    assert "Pain now 3/10 → 0/10 improving (-3 points)" in text
    assert "Resisted knee flexion, right painful → strong and pain-free improving" in text
    assert "Neurological screen: unchanged since the initial exam on 5 October 2026" in text
    assert "1 of 7 criteria met; not met: performance on field testing" in text
    assert "No pain on palpation met 2 November 2026 (follow-up): met" in text
    assert "Askling H-test: active hip flexion with the knee straight (right): 72 deg" in text
    assert "van der Horst" in text and "shared between the clinician and the patient" in text
    assert not re.search(r"\b(fit|cleared)\b", text, re.I)


def test_no_checklist_unless_the_episode_is_a_hamstring_injury(app, kb) -> None:
    sciatica = [Visit(**{**FIRST.__dict__, "top_condition": "lumbar-radiculopathy"}), NOW]
    view = visit_report.view(kb.decision.course, kb.return_to_sport, sciatica)
    assert view["return_to_sport"] is None
    assert "Return to sport" not in _panel(app, kb, view)


def test_text_in_the_panel_is_escaped(app, kb) -> None:
    view = visit_report.view(kb.decision.course, kb.return_to_sport, [FIRST, NOW])
    view["rows"][0]["finding"] = "<script>alert(1)</script>"
    html = _panel(app, kb, view)
    assert "<script>" not in html and "&lt;script&gt;" in html
