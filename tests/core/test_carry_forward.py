"""What a new exam takes from the previous signed one: the story so far, never a
finding to examine again, a red flag or an answer that changes with time."""
from __future__ import annotations

import json
from pathlib import Path

from plugin.core import carry_forward, drafts, responses, terminology as t
from plugin.core.responses import Context

CASE = json.loads((Path(__file__).resolve().parents[1] / "data" / "cases" /
                   "triathlete-proximal-hamstring-tendinopathy.json").read_text())["answers"]


def test_only_the_history_story_is_carried(form) -> None:
    carried = carry_forward.carry(form, CASE)
    assert carried == {"history.affected-side": "right", "history.onset": "gradual",
                       "history.prior-hamstring-injuries": 0, "history.gait-hip-drop": True,
                       "history.imaging": ["none"], "history.injections": ["none"],
                       "history.eswt": False}
    # never a finding, a red flag, the time since onset or today's symptoms
    assert all(drafts.section_of(form, k).link_id == "history" for k in carry_forward.CARRIED)
    for never in ("history.duration", "history.pt-weeks", "history.pain-location",
                  "history.aggravating", "red-flags.night-pain", "slr.right.onset-angle"):
        assert never not in carry_forward.CARRIED


def test_every_carried_linkid_is_a_question_of_the_form(form) -> None:
    assert all(form.item(k) is not None and form.item(k).answerable
               for k in carry_forward.CARRIED)


def test_what_the_schema_refuses_is_not_carried(form) -> None:
    previous = {"history.onset": "gradual", "history.mechanism": "kicking",  # not enabled
                "history.imaging": ["none", "xray"], "history.eswt": "yes"}
    assert carry_forward.carry(form, previous) == {"history.onset": "gradual"}


def test_the_mark_rides_on_the_response_item_and_reads_back(form) -> None:
    source = carry_forward.source("exam-1", "2026-11-01")
    checked = drafts.check(form, {"history.onset": "gradual", "pain.current": 3})
    qr = drafts.response(form, checked, Context(status="in-progress", identifier="exam-2"),
                         carried={"history.onset": source, "history.eswt": source})
    history = next(i for i in qr["item"] if i["linkId"] == "history")
    assert history["item"][0]["extension"] == [{"url": t.EXT_CARRIED_FORWARD,
                                                "valueReference": source}]
    assert source["display"] == "exam signed on 2026-11-01"
    # an answer no longer there carries no mark
    assert responses.carried_of(qr) == {"history.onset": source}
