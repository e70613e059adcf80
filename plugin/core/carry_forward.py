"""History carried from the patient's previous signed exam into a new one.

Why: at a later visit the story so far (side, onset, mechanism, previous injuries,
imaging and injections, shockwave) has not changed; asking it again costs taps and
invites copying errors. What is never carried: every finding that must be examined again
(all exam sections), the red flags (asked at every visit), what changes with time (time
since onset, weeks of physiotherapy so far) and today's symptoms (where it hurts, what
makes it worse or better, tingling, weakness): the clinician asks those afresh.

One home for the rule (the follow-up visits reuse it): the carried linkIds are data,
below; a carried answer is marked on the page and in the draft response as carried from
its source exam until the clinician changes it. Pure: no storage, no HTTP.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import answers as answers_mod
from . import terminology as t
from .questionnaire import Form

#: The questions a new exam takes from the previous signed one, in form order.
CARRIED = ("history.affected-side", "history.onset", "history.mechanism", "history.pop",
           "history.prior-hamstring-injuries", "history.gait-hip-drop", "history.imaging",
           "history.injections", "history.eswt")


def carry(form: Form, previous: Mapping[str, Any]) -> dict[str, Any]:
    """The answers of ``previous`` (plain answers of a signed revision) that a new exam
    of ``form`` starts with: the CARRIED ones that the answers schema accepts for this
    form (a follow-up question only with the answer that enables it), as they were."""
    offered = {k: previous[k] for k in CARRIED if k in previous and form.item(k) is not None}
    valid, _ = answers_mod.load_partial(form, offered)
    return {k: v for k, v in offered.items() if k in valid}


def source(exam_id: str, signed_on: str) -> dict[str, Any]:
    """The reference a carried answer names: the previous exam's response (by its
    plugin-owned identifier) and, for people, when it was signed."""
    return {"identifier": {"system": t.ID_QUESTIONNAIRE_RESPONSE, "value": exam_id},
            "display": f"exam signed on {signed_on}"}

