"""The tablet layout is derived from the Questionnaire's structure: every answerable
question lands on exactly one page, sided questions pair up, palpation sites reach the
body map, and the summary reads left | right."""
from __future__ import annotations

import pytest

from plugin.core import layout


def test_every_answerable_question_is_on_exactly_one_page(form) -> None:
    placed = [link_id for page in layout.pages(form) for link_id in page.link_ids]
    assert sorted(placed) == sorted(i.link_id for i in form.answerable)
    assert [p.number for p in layout.pages(form)] == list(range(1, len(form.items) + 1))


def test_sided_groups_pair_and_legs_split(form) -> None:
    left, right = layout.pair(form, form.index["palpation.psis"])
    assert (left.link_id, right.link_id) == ("palpation.psis.left", "palpation.psis.right")
    assert layout.pair(form, form.index["slr"]) is None
    legs = layout.sides(form, form.index["slr"])
    assert [g.link_id for g in legs] == ["slr.left", "slr.right"]
    assert layout.sides(form, form.index["palpation.psis"]) is None


def test_every_graded_palpation_site_is_on_the_body_map(form) -> None:
    palpation = layout.page(form, "palpation")
    assert len(palpation.sites) == 8 and all(s.positions for s in palpation.sites)
    for site in palpation.sites:
        (lx, ly), (rx, ry) = site.positions
        assert lx < layout.MIDLINE < rx and ly == ry  # mirrored about the midline
    gap = form.index["palpation.defect.left"]  # a yes/no finding, not a graded site
    assert all(site.left is not gap for site in palpation.sites)


@pytest.mark.parametrize("link_id, normal", [
    ("neuro.power.l4.left", 5), ("neuro.sensation.s1.right", "normal"),
    ("neuro.reflex.knee.left", "normal"), ("hip-drop.trendelenburg-hold.left", None),
    ("pain.current", None), ("slr.left.response", None),
])
def test_normal_values(form, link_id, normal) -> None:
    assert layout.normal_value(form.index[link_id]) == normal


def test_the_neuro_page_has_its_rows_of_normal(form) -> None:
    assert layout.page(form, "neuro").normal_rows == 8
    assert all(p.normal_rows == 0 for p in layout.pages(form) if p.item.link_id != "neuro")


@pytest.mark.parametrize("link_id, seconds", [
    ("sitting.tolerance-minutes", 60), ("hip-drop.trendelenburg-hold.left", 1),
    ("slr.left.onset-angle", None), ("patient.age-years", None),
])
def test_timed_questions_get_a_stopwatch(form, link_id, seconds) -> None:
    assert layout.timed(form.index[link_id]) == seconds


@pytest.mark.parametrize("link_id, value, shown", [
    ("patient.age-years", 40, "40 years"), ("slr.left.onset-angle", 40, "40°"),
    ("history.duration", {"value": 3, "unit": "wk"}, "3 weeks"),
    ("history.aggravating", ["sitting", "running"], "Sitting, Running"),
    ("red-flags.fever", False, "No"), ("pain.current", 3, "3"),
    ("slr.left.onset-angle", "4o", "4o°"),
])
def test_display(form, link_id, value, shown) -> None:
    assert layout.display(form.index[link_id], value) == shown


def test_summary_reads_left_and_right(form) -> None:
    summary = dict((p.item.link_id, rows) for p, rows in layout.summary(form, {
        "slr.left.onset-angle": 40, "slr.right.onset-angle": 70,
        "palpation.psis.right": "tender", "pain.current": 3}))
    assert set(summary) == {"slr", "palpation", "pain"}
    angle, = summary["slr"]
    assert (angle.label.startswith("SLR: hip flexion"), angle.left, angle.right) == (True, "40°", "70°")
    psis, = summary["palpation"]
    assert (psis.left, psis.right) == (None, "Tender")
    pain, = summary["pain"]
    assert pain.value == "3"


def test_a_crossed_slr_row_names_neither_leg_over_both_columns(form) -> None:
    """The row heads the Left and Right columns: "Raising the left leg..." over both read
    as if the right column were the left leg too."""
    summary = dict((p.item.link_id, rows) for p, rows in layout.summary(form, {
        "slr.left.crossed-pain": False, "slr.right.crossed-pain": True}))
    crossed, = summary["slr"]
    assert "left" not in crossed.label.lower() and "right" not in crossed.label.lower()
    assert crossed.label == "Raising this leg reproduces pain in the other leg (crossed SLR)"
    assert (crossed.left, crossed.right) == ("No", "Yes")


@pytest.mark.parametrize("text, label", [
    ("Left SLR: symptoms reproduced", "SLR: symptoms reproduced"),
    ("left slump: effect of releasing neck flexion", "Slump: effect of releasing neck flexion"),
    ("Raising the left leg reproduces pain in the other leg", "Raising this leg reproduces pain in the other leg"),
    ("Ankle reflex", "Ankle reflex"),
])
def test_row_labels_take_the_side_out(text, label) -> None:
    assert layout.row_label(text) == label


@pytest.mark.parametrize("link_id, value, plain", [
    ("red-flags.fever", False, True), ("red-flags.fever", True, False),
    ("neuro.power.l4.left", 5, True), ("neuro.power.l4.left", 4, False),
    ("neuro.reflex.knee.left", "normal", True), ("neuro.reflex.knee.left", "brisk", False),
    ("palpation.psis.left", "not-tender", True), ("palpation.psis.left", "tender", False),
    ("history.imaging", ["none"], True), ("history.aggravating", ["sitting"], False),
    ("slr.left.onset-angle", 40, False), ("pain.current", 0, False),
])
def test_unremarkable_answers(form, link_id, value, plain) -> None:
    assert layout.unremarkable(form.index[link_id], value) is plain


def test_a_row_is_unremarkable_only_when_every_side_is(form) -> None:
    rows = {r.link_id: r for _, rs in layout.summary(form, {
        "palpation.psis.left": "not-tender", "palpation.psis.right": "tender",
        "palpation.lumbar-spine.left": "not-tender"}) for r in rs}
    assert not rows["palpation.psis"].unremarkable
    assert rows["palpation.lumbar-spine"].unremarkable


@pytest.mark.parametrize("link_id, value, marked", [
    ("slr.left.response", "leg-pain-below-knee", True),
    ("slr.left.response", "hamstring-stretch-only", False),  # a negative neural test
    ("slr.left.response", "none", False),
    ("palpation.psis.left", "tender", True),
    ("palpation.psis.left", "not-tender", False),
    ("neuro.power.l5.left", 4, True),
    ("neuro.power.l5.left", 5, False),
    ("red-flags.fever", True, True),
    ("red-flags.fever", False, False),
    ("history.affected-side", "24028007", False),  # a side is not a finding
    ("history.onset", "sudden", False),
    ("history.relieving", ["rest"], False),  # an "all that apply" list describes
    ("slr.left.onset-angle", 40, False),  # an angle is read, not judged
])
def test_abnormal_findings_are_the_judged_ones_off_normal(form, link_id, value, marked) -> None:
    assert layout.abnormal(form.index[link_id], value) is marked


def test_summary_rows_name_their_abnormal_cells(form) -> None:
    rows = dict((r.link_id, r) for _, rs in layout.summary(form, {
        "slr.left.response": "leg-pain-below-knee", "slr.right.response": "none",
        "history.pop": True}) for r in rs)
    assert rows["slr.left.response"].abnormal == {"left"}
    assert rows["history.pop"].abnormal == {"value"}


def test_a_negative_screen_is_one_whole_row(form) -> None:
    raw = {f"red-flags.{k}": False for k in ("fever", "night-pain", "weight-loss")}
    (page, rows), = [(p, r) for p, r in layout.summary(form, raw)]
    assert page.item.link_id == "red-flags"
    assert [(r.label, r.whole) for r in rows] == [("Red-flag screen negative: 3 of 12 asked", True)]
    # one "yes" and the screen is shown question by question, the yes marked
    rows = layout.summary(form, {**raw, "red-flags.fever": True})[0][1]
    assert len(rows) == 3 and [r.abnormal for r in rows].count({"value"}) == 1
    # inspection (all yes/no but read left | right) is never condensed to a line
    inspection = next(p.item for p in layout.pages(form) if p.item.link_id == "inspection")
    assert not layout.yes_no_screen(form, inspection)
