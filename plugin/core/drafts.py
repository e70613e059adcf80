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
from . import layout, responses
from .answers import Answers
from .questionnaire import Form, Item
from .responses import Context, Exam


@dataclass(frozen=True)
class Checked:
    """Raw draft answers with their valid part and their problems (keyed by linkId).

    ``raw`` holds what a page can show: every stored answer of the right shape, kept as
    typed; one of the wrong shape is left out of it and reported in ``errors``."""

    raw: Mapping[str, Any]
    valid: Answers
    errors: Mapping[str, list[str]]


def check(form: Form, raw: Mapping[str, Any]) -> Checked:
    """Validate a draft without discarding anything that has the item's shape."""
    bad = shape_errors(form, raw)
    shown = {k: v for k, v in raw.items() if k not in bad}
    valid, errors = answers_mod.load_partial(form, shown)
    for link_id, messages in bad.items():
        errors.setdefault(link_id, []).extend(
            f"The stored value cannot be shown here: {m[0].lower()}{m[1:]} Answer the "
            "question again." for m in messages)
    return Checked(shown, valid, errors)


#: JSON types a page may send for an item type: what the tablet's fields produce. A
#: number field sends its text when it is not a number ("4a"), kept as typed and flagged.
_SHAPES: dict[str, tuple[type, ...]] = {
    "boolean": (bool,), "integer": (int, float, str), "decimal": (int, float, str),
    "date": (str,), "dateTime": (str,), "string": (str,), "text": (str,), "choice": (str,)}
_WHAT = {"boolean": "true or false", "integer": "a number (or the text typed)",
         "decimal": "a number (or the text typed)", "quantity":
         '{"value": a number (or the text typed), "unit": a unit}', "choice": "an option code"}


def shape_errors(form: Form, answers: Mapping[str, Any]) -> dict[str, list[str]]:
    """The answers whose JSON shape no page of ``form`` can show (a list for a single
    choice, ``{}`` for a number, ...), keyed by linkId; values of the right shape but
    wrong content (out of range, not an option) are the answers schema's to flag."""
    errors: dict[str, list[str]] = {}
    for link_id, value in answers.items():
        item = form.item(link_id) if isinstance(link_id, str) else None
        if item is None or item.type == "group":
            continue  # not a question: the answers schema names it
        if not _has_shape(item, value):
            want = _WHAT.get(item.type, "text")
            want = f"a non-empty list of {want}" if item.repeats else want
            errors[link_id] = [f"Expected {want}."]
    return errors


def _has_shape(item: Item, value: Any) -> bool:
    if item.repeats:
        return isinstance(value, list) and bool(value) and all(
            _single_shape(item.type, v) for v in value)
    return _single_shape(item.type, value)


def _single_shape(type_: str, value: Any) -> bool:
    if type_ == "quantity":
        return isinstance(value, Mapping) and set(value) == {"value", "unit"} \
            and _single_shape("decimal", value["value"]) and isinstance(value["unit"], str)
    if isinstance(value, bool) and type_ != "boolean":
        return False
    return isinstance(value, _SHAPES.get(type_, (str,)))


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


def response(form: Form, checked: Checked, context: Context,
             one_step: frozenset[str] = frozenset(),
             carried: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The in-progress QuestionnaireResponse of the valid answers; ``one_step``: the
    sections whose screen was recorded in one tap (kept only while it still holds);
    ``carried``: answers carried from an earlier exam (linkId -> its response)."""
    return responses.build(Exam(
        form, checked.valid, context,
        one_step=frozenset(s for s in one_step
                           if layout.one_step_holds(form, s, checked.valid)),
        carried={k: v for k, v in (carried or {}).items() if k in checked.valid}))


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
