"""How a Questionnaire is laid out for people: pages, left|right rows, body map, neuro grid.

Shared by the tablet pages and the PDF summary (pure: no Flask, no I/O).

Everything here is derived from the Form's structure and rendering hints, never from a
list of linkIds, so a revised Questionnaire lays itself out: a group whose two
questions end in ``.left`` and ``.right`` is one row with two columns; a group whose two
sub-groups do is two columns of questions; palpation sites graded on the tenderness
scale also appear on the body map; rows with a normal value get a one-tap "normal".
"""
from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .questionnaire import Form, Item

#: The palpation scale a tap on the body map cycles through, in order.
TENDERNESS = ("not-tender", "tender", "reproduces-familiar-pain")
#: Units that get a stopwatch beside the number (timed holds and sitting tolerance).
TIMED_UNITS = {"s": 1, "min": 60}
#: Body-map positions (posterior view, viewBox 300 x 380; x is the distance from the
#: midline, mirrored per side, the patient's left drawn on the left as seen from
#: behind). Keyed by the site's group; a site without a position is listed, not drawn.
SITE_POSITIONS = {
    "lumbar-spine": (22, 40), "psis": (30, 92), "sciatic-notch": (54, 128),
    "greater-trochanter": (104, 160), "ischial-tuberosity": (44, 188),
    "hamstring-proximal": (50, 230), "hamstring-mid": (52, 280),
    "hamstring-distal": (50, 330),
}
MIDLINE = 150
#: The short name the body map writes beside each site (the question's text is longer).
SITE_NAMES = {
    "lumbar-spine": "Lumbar spine", "psis": "PSIS (Fortin point)",
    "sciatic-notch": "Sciatic notch", "greater-trochanter": "Greater trochanter",
    "ischial-tuberosity": "Ischial tuberosity", "hamstring-proximal": "Proximal hamstring",
    "hamstring-mid": "Mid hamstring", "hamstring-distal": "Distal hamstring",
}
#: What a one-tap screen records for a question it covers: a test "negative", a site
#: "not tender"; a page of yes/no questions only (the red-flag screen) records "no".
SCREEN_NEGATIVE = ("negative", "not-tender")
#: The body-map outline (SVG paths in the same viewBox): lower back, buttocks and thighs
#: seen from behind, then the midline and the gluteal folds.
BODY_OUTLINE = ("M95 10 L205 10 L212 80 Q260 95 258 160 L246 370 L168 370 L158 215 L150 205 "
                "L142 215 L132 370 L54 370 L42 160 Q40 95 88 80 Z")
BODY_LINES = ("M150 12 L150 200", "M150 200 Q110 215 70 200 M150 200 Q190 215 230 200")
#: UCUM units in words, as people read them on the tablet and the summary.
UNIT_WORDS = {"a": "years", "mo": "months", "wk": "weeks", "d": "days", "h": "hours",
              "min": "minutes", "s": "seconds", "deg": "°"}


@dataclass(frozen=True)
class Site:
    """A body-map site: its group label and the two questions with their positions."""

    label: str
    left: Item
    right: Item
    positions: tuple[tuple[int, int], tuple[int, int]] | None
    name: str = ""


@dataclass(frozen=True)
class Page:
    """One section of the form (a top-level group) as a tablet page."""

    item: Item
    number: int
    link_ids: tuple[str, ...]
    sites: tuple[Site, ...]
    normal_rows: int
    #: The one-tap screen: (linkId, negative answer) for each question it records when
    #: still unanswered; empty when the page has none (``screen``).
    screen: tuple[tuple[str, Any], ...] = ()

    @property
    def screen_label(self) -> str:
        """The button's words: what the tap records, as a clinician says it."""
        if all(value is False for _, value in self.screen):
            return "Screen negative: all no"
        if all(value == "not-tender" for _, value in self.screen):
            return "Remaining sites not tender"
        return "Remaining tests negative"


def pages(form: Form) -> tuple[Page, ...]:
    return _pages(form)


def page(form: Form, link_id: str) -> Page | None:
    return next((p for p in _pages(form) if p.item.link_id == link_id), None)


@lru_cache(maxsize=8)
def _pages(form: Form) -> tuple[Page, ...]:
    result = []
    for number, section in enumerate(form.items, start=1):
        ids = tuple(i.link_id for i in _descendants(form, section) if i.answerable)
        sites = tuple(_site(form, g) for g in _descendants(form, section)
                      if pair(form, g) and _graded(pair(form, g)[0]))  # type: ignore[index]
        rows = sum(1 for g in _descendants(form, section)
                   if pair(form, g) and normal_value(pair(form, g)[0]) is not None)  # type: ignore[index]
        result.append(Page(section, number, ids, sites, rows, screen(form, section)))
    return tuple(result)


def screen(form: Form, section: Item) -> tuple[tuple[str, Any], ...]:
    """The questions of a section one tap can record as negative, with that answer:
    every question when all are yes/no (a screen such as the red flags: all "no"), else
    each choice offering a ``SCREEN_NEGATIVE`` option (tests "negative", sites "not
    tender"). Derived from the Questionnaire, never a list of linkIds; fewer than two
    questions is no screen."""
    items = [i for i in _descendants(form, section) if i.answerable]
    if items and all(i.type == "boolean" for i in items):
        found: list[tuple[str, Any]] = [(i.link_id, False) for i in items]
    else:
        found = [(i.link_id, code) for i in items if i.type == "choice" and not i.repeats
                 for code in SCREEN_NEGATIVE if i.option(code) is not None]
    return tuple(found) if len(found) > 1 else ()


def one_step_holds(form: Form, section: str, answers: Mapping[str, Any]) -> bool:
    """Whether a section may say its screen was recorded in one step: it has a screen and
    every question of it holds the screen's negative answer (typed answers: one-value
    tuples). A "yes" given later, or a question cleared, ends the claim."""
    found = page(form, section)
    return bool(found and found.screen) and all(
        tuple(answers.get(link_id, ())) == (value,) for link_id, value in found.screen)


def scale(item: Item) -> bool:
    """Whether a number gets a scale to tap or drag (one gesture to any value): a
    slider control, or an angle."""
    return item.type == "integer" and (item.control == "slider" or (
        (item.unit or {}).get("code") == "deg" and item.max_value is not None
        and item.min_value is not None))


def start_value(item: Item) -> Any:
    """Where the first tap of a stepper on an empty field lands: the middle of a slider
    (an SLR angle starts at 45°), else the minimum (a deficit starts at 0°); never the
    maximum."""
    low, high = item.min_value, item.max_value
    if low is None:
        return 0
    if high is None or item.control != "slider":
        return low
    step = item.step or 1
    return low + ((high - low) // 2 // step) * step


def pair(form: Form, item: Item) -> tuple[Item, Item] | None:
    """The (left, right) questions of a sided group, else None."""
    return _sided(form, item, answerable=True)


def sides(form: Form, item: Item) -> tuple[Item, Item] | None:
    """The (left, right) sub-groups of a group that examines each leg in turn."""
    return _sided(form, item, answerable=False)


def _sided(form: Form, item: Item, *, answerable: bool) -> tuple[Item, Item] | None:
    if item.type != "group" or len(item.children) != 2:
        return None
    left, right = form.children(item)
    if not (left.link_id == f"{item.link_id}.left" and right.link_id == f"{item.link_id}.right"):
        return None
    if left.answerable != answerable or right.answerable != answerable:
        return None
    return left, right


def lateral(form: Form, section: Item) -> bool:
    """Whether a section examines left and right: it holds a left/right pair of questions
    or a group that examines each leg in turn (the summary's findings table)."""
    return any(pair(form, g) or sides(form, g) for g in (section, *_descendants(form, section)))


def normal_value(item: Item) -> Any:
    """The value "normal" stands for: the option coded ``normal``, or full MRC power."""
    if item.type == "choice" and item.option("normal") is not None:
        return "normal"
    if item.type == "integer" and item.min_value == 0 and item.max_value == 5 and not item.unit:
        return 5
    return None


def normal_answer(item: Item) -> Any:
    """The plain answer an unremarkable exam records for ``item``: its ``normal_value``,
    "no" for a yes/no question, an ``UNREMARKABLE`` option where there is one (else the
    first option), an integer's minimum; a repeating choice as a one-item list. For the
    benchmark's and tests' realistic exam; a quantity gets 1 of its first unit."""
    normal = normal_value(item)
    if item.type == "boolean":
        value: Any = False
    elif normal is not None:
        value = normal
    elif item.type == "choice":
        codes = [o.code for o in item.options]
        value = next((c for c in codes if c in UNREMARKABLE), codes[0])
    elif item.type == "integer":
        value = item.min_value if item.min_value is not None else 0
    elif item.type == "quantity":
        value = {"value": 1, "unit": item.unit_options[0] if item.unit_options else "d"}
    else:
        value = ""
    return [value] if item.repeats and item.type == "choice" else value


def timed(item: Item) -> int | None:
    """Seconds per unit for a number a stopwatch can fill, else None."""
    if item.type == "integer" and item.unit:
        return TIMED_UNITS.get(item.unit.get("code", ""))
    return None


def enable_when_json(form: Form, item: Item) -> str:
    """The item's own enableWhen for the page script (ancestors carry theirs)."""
    if not item.enable_when:
        return ""
    return json.dumps({"behavior": item.enable_behavior, "conditions": [
        {"question": c.question, "operator": c.operator, "answer": c.answer}
        for c in item.enable_when]})


def _graded(item: Item) -> bool:
    return item.type == "choice" and tuple(o.code for o in item.options) == TENDERNESS


def _site(form: Form, group: Item) -> Site:
    left, right = pair(form, group)  # type: ignore[misc]
    key = group.link_id.rsplit(".", 1)[-1]
    where = SITE_POSITIONS.get(key)
    positions = ((MIDLINE - where[0], where[1]), (MIDLINE + where[0], where[1])) if where else None
    return Site(group.text, left, right, positions, SITE_NAMES.get(key, group.text))


def _descendants(form: Form, item: Item) -> list[Item]:
    found = []
    for child in form.children(item):
        found.append(child)
        found.extend(_descendants(form, child))
    return found


def display(item: Item, value: Any) -> str:
    """A raw draft value as people read it (an option's display, a unit, Yes/No)."""
    if isinstance(value, list):
        return ", ".join(display(item, v) for v in value)
    if item.type == "choice" and isinstance(value, str) and item.option(value) is not None:
        return item.option(value).display  # type: ignore[union-attr]
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, Mapping) and "value" in value:
        return with_unit(value.get("value"), str(value.get("unit", "")))
    return with_unit(value, (item.unit or {}).get("code", ""))


def unit_word(code: str) -> str:
    """A UCUM unit code as a word (``wk`` -> ``weeks``); unknown codes as they are."""
    return UNIT_WORDS.get(code, code)


def with_unit(value: Any, code: str) -> str:
    """A number with its UCUM unit as clinicians write it: ``70°``, ``6 weeks``, ``40``."""
    unit = unit_word(code)
    if unit == "°":
        return f"{value}°"
    return f"{value} {unit}" if unit else str(value)


@dataclass(frozen=True)
class Row:
    """One line of the findings summary: a label and the left/right (or single) value."""

    label: str
    left: str | None = None
    right: str | None = None
    value: str | None = None
    link_id: str = ""
    #: Every value given is normal, negative, absent or "no": a summary may group it.
    unremarkable: bool = False
    #: The cells holding an abnormal or positive finding ("left", "right", "value"):
    #: printed bold with ``ABNORMAL_MARK`` (see ``abnormal``).
    abnormal: frozenset[str] = frozenset()
    #: The label is the whole line (a negative screen): it spans every column.
    whole: bool = False

    def marked(self, cell: str) -> bool:
        return cell in self.abnormal


#: Answer codes that record a normal, negative or absent finding.
UNREMARKABLE = frozenset({"normal", "negative", "not-tender", "none", "strong-painfree",
                          "good"})


def unremarkable(item: Item, value: Any) -> bool:
    """Whether an answer records nothing abnormal: "no", a normal/negative option, or
    the row's normal value (full MRC power)."""
    if isinstance(value, list):
        return bool(value) and all(unremarkable(item, v) for v in value)
    if value is False:
        return True
    if item.type == "choice" and isinstance(value, str):
        return value in UNREMARKABLE
    normal = normal_value(item)
    return normal is not None and value == normal and not isinstance(value, bool)


#: A single value longer than this is a list (the grouped normal findings): it spans
#: both columns left-aligned; a shorter one is centred across them.
SHORT_VALUE = 40
#: The marker beside an abnormal or positive finding, with the key that explains it.
#: A shape, not a colour, so it survives black-and-white printing; text, so it is read
#: aloud and found in the PDF's text.
ABNORMAL_MARK = "▲"
ABNORMAL_KEY = f"{ABNORMAL_MARK} bold: abnormal or positive finding"


#: Answers that are neither normal nor abnormal findings: a stretch felt only in the
#: hamstring on a neural test (a negative SLR or slump), a test not done, no change
#: with sensitising, no effect of sitting. Never marked; grouping is unchanged.
NOT_ABNORMAL = frozenset({"hamstring-stretch-only", "stretch-only", "not-done", "not-tested",
                          "no-change", "no-effect"})


#: Sections that record the course of care, not findings (the follow-up's adherence and
#: global rating of change): never marked, though adherence offers "none".
COURSE_OF_CARE = frozenset({"follow-up"})


def judged(item: Item) -> bool:
    """Whether an answer to ``item`` can be called normal or abnormal at all: a yes/no
    question, a choice offering a normal/negative option, an MRC grade. A side, an onset
    or a duration is neither, and is never marked."""
    if item.parent in COURSE_OF_CARE:
        return False
    if item.type == "boolean" or normal_value(item) is not None:
        return True
    # "all that apply" lists (what eases it, imaging so far) describe, they do not judge
    return (item.type == "choice" and not item.repeats
            and any(o.code in UNREMARKABLE | NOT_ABNORMAL for o in item.options))


def abnormal(item: Item, value: Any) -> bool:
    """An answer that records an abnormal or positive finding (highlighted wherever
    findings are shown: review, record, summary PDF)."""
    if value is None or value == "" or value == []:
        return False
    if isinstance(value, str) and value in NOT_ABNORMAL:
        return False
    return judged(item) and not unremarkable(item, value)


def yes_no_screen(form: Form, section: Item) -> bool:
    """A section made only of yes/no questions, none of them per side (the red-flag
    screen; not inspection, which is read left | right): when every
    answer is "no" it reads as one line (``negative_screen``)."""
    questions = [i for i in _descendants(form, section) if i.answerable]
    return (bool(questions) and all(i.type == "boolean" for i in questions)
            and not lateral(form, section))


def negative_screen(form: Form, section: Item, raw: Mapping[str, Any],
                    one_step: bool = False) -> str | None:
    """``"Red-flag screen negative: 12 of 12 asked"`` when ``section`` is a screen and
    every question asked was answered "no", counting the questions actually asked out
    of the screen's, adding "in one step" when it was recorded with the one-tap screen
    (``one_step``); else None (a positive answer is shown row by row, marked)."""
    if not yes_no_screen(form, section):
        return None
    questions = [i for i in _descendants(form, section) if i.answerable]
    asked = [raw[i.link_id] for i in questions if i.link_id in raw]
    if not asked or any(v is not False for v in asked):
        return None
    line = f"{screen_name(section.text)} negative: {len(asked)} of {len(questions)} asked"
    return line + " in one step" if one_step else line


def screen_name(text: str) -> str:
    """A screen's name from its section's title: "Red flags" -> "Red-flag screen"."""
    words = text.split()
    if len(words) > 1 and words[-1].endswith("s"):
        return "-".join([*words[:-1], words[-1][:-1]]) + " screen"
    return f"{text} screen"


def row_label(left_text: str) -> str:
    """The label of a left | right row, from the left question's text with the side
    taken out: it heads both columns ("Left SLR: symptoms reproduced" -> "SLR: symptoms
    reproduced"; "Raising the left leg reproduces pain in the other leg" -> "Raising
    this leg reproduces pain in the other leg")."""
    label = re.sub(r"\bthe left\b", "this", left_text, flags=re.IGNORECASE)
    label = re.sub(r"^left\s+", "", label, flags=re.IGNORECASE)
    return label[:1].upper() + label[1:]


def summary(form: Form, raw: Mapping[str, Any],
            one_step: Collection[str] = frozenset()) -> list[tuple[Page, list[Row]]]:
    """Answered findings per page, sided ones as left | right rows, for review and record
    (``one_step``: the sections whose screen was recorded with its one tap)."""
    result = []
    for p in _pages(form):
        line = negative_screen(form, p.item, raw, p.item.link_id in one_step)
        if line:
            result.append((p, [Row(line, link_id=p.item.link_id, unremarkable=True,
                                   whole=True)]))
            continue
        rows = [r for r in _rows(form, p.item, raw) if r.left or r.right or r.value]
        if rows:
            result.append((p, rows))
    return result


def _rows(form: Form, group: Item, raw: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = []

    def shown(item: Item) -> str | None:
        return display(item, raw[item.link_id]) if item.link_id in raw else None

    def plain(*items: Item | None) -> bool:
        given = [(i, raw[i.link_id]) for i in items if i is not None and i.link_id in raw]
        return bool(given) and all(unremarkable(i, v) for i, v in given)

    def flagged(**cells: Item | None) -> frozenset[str]:
        return frozenset(cell for cell, i in cells.items()
                         if i is not None and i.link_id in raw and abnormal(i, raw[i.link_id]))

    legs = sides(form, group)
    if legs:
        for left in form.children(legs[0]):
            right = form.item(legs[1].link_id + left.link_id[len(legs[0].link_id):])
            rows.append(Row(row_label(left.text), shown(left),
                            shown(right) if right else None, link_id=left.link_id,
                            unremarkable=plain(left, right),
                            abnormal=flagged(left=left, right=right)))
        return rows
    for child in form.children(group):
        both = pair(form, child)
        if both:
            rows.append(Row(child.text, shown(both[0]), shown(both[1]), link_id=child.link_id,
                            unremarkable=plain(*both),
                            abnormal=flagged(left=both[0], right=both[1])))
        elif child.type == "group":
            rows.extend(_rows(form, child, raw))
        elif child.answerable:
            rows.append(Row(child.text, value=shown(child), link_id=child.link_id,
                            unremarkable=plain(child), abnormal=flagged(value=child)))
    return rows
