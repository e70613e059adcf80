"""Follow-up visits from the tablet: "Follow-up visit" on a signed exam's record page
begins the next visit of its episode (``exams.begin_follow_up``) and opens its first
page; the follow-up then goes through the same pages, review, signature and record as
any exam (the pages take their form from the exam's Questionnaire).

A route of the ``exam`` blueprint (endpoint ``exam.begin_follow_up``), kept apart from
the pages in ``exam``.
"""
from __future__ import annotations

from typing import Any

from flask import redirect

from ..errors import InputError
from ..record import exams
from .auth import requires
from .current import kb as _kb, now as _now, store as _store
from .exam import _load, _review, bp, first_page, requester


@bp.post("/exams/<exam_id>/follow-ups")
@requires("clinician")
def begin_follow_up(exam_id: str) -> Any:
    """Begin (or resume) the follow-up of ``exam_id``'s episode; an exam not signed yet
    is shown again on its review page with the reason (409), nothing is begun."""
    record_, _, _ = _load(exam_id)
    try:
        follow_up = exams.begin_follow_up(_store(), _kb(), record_, now=_now(),
                                          by=requester())
    except InputError as exc:
        return _review(exam_id, message=exc.message, status=409)
    return redirect(first_page(follow_up), 303)
