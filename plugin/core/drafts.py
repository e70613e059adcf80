"""Work in progress on the tablet: what the clinician typed, kept whole, and checked.

A draft keeps the answers exactly as entered (``raw``), even a value that breaks the
Questionnaire, so nothing typed is ever lost; the in-progress QuestionnaireResponse is
built from the part that is valid, and every problem is reported by the same answers
schema the API uses. Pure: no storage, no HTTP.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import answers as answers_mod
from . import responses
from .answers import Answers
from .questionnaire import Form, Item
from .responses import Context, Exam


@dataclass(frozen=True)
class Checked:
    """Raw draft answers with their valid part and their problems (keyed by linkId)."""

    raw: Mapping[str, Any]
    valid: Answers
    errors: Mapping[str, list[str]]


def check(form: Form, raw: Mapping[str, Any]) -> Checked:
    """Validate a draft without discarding anything."""
    valid, errors = answers_mod.load_partial(form, raw)
    return Checked(dict(raw), valid, errors)


def merge(stored: Mapping[str, Any], link_ids: Iterable[str],
          submitted: Mapping[str, Any]) -> dict[str, Any]:
    """The stored answers with those of ``link_ids`` (one page) replaced by ``submitted``.

    A page sends every answer it shows; an item of the page missing from ``submitted``
    was cleared. Answers of other pages are kept as stored, in form order of arrival.
    """
    page = set(link_ids)
    merged = {k: v for k, v in stored.items() if k not in page}
    merged.update({k: v for k, v in submitted.items() if k in page})
    return merged


def response(form: Form, checked: Checked, context: Context) -> dict[str, Any]:
    """The in-progress QuestionnaireResponse of the valid answers."""
    return responses.build(Exam(form, checked.valid, context))


def section_of(form: Form, link_id: str) -> Item:
    """The top-level group (a page of the tablet form) that holds ``link_id``."""
    item = form.index[link_id]
    return next(iter(reversed([item, *form.ancestors(link_id)])))


def progress(form: Form, valid: Answers) -> dict[str, tuple[int, int]]:
    """Per section: (answered, enabled questions). Disabled questions do not count."""
    counts: dict[str, list[int]] = {link_id: [0, 0] for link_id in form.top}
    for item in form.answerable:
        if not answers_mod.enabled(form, valid, item):
            continue
        tally = counts[section_of(form, item.link_id).link_id]
        tally[1] += 1
        tally[0] += item.link_id in valid
    return {k: (a, n) for k, (a, n) in counts.items()}
