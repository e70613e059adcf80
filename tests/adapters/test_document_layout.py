"""How the clinician summary and the patient handout are laid out, checked on the PDFs
people get: their text (what sits on which page, what is marked) and their rendered
pages (how far the last page's ink reaches), across several golden cases including an
amended record and red-flag cases. Page images are kept in tests/artifacts/pdf/."""
from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path

import pytest

from plugin.adapters.documents import render
from plugin.core import layout
from plugin.core.datetimes import parse_aware
from plugin.decision import sources
from plugin.record import pipeline
from tests.support import pdfs

CASES_DIR = Path(__file__).resolve().parent.parent / "data" / "cases"
#: Cases of every shape: radicular (two summary pages), red flags (emergency and
#: urgent), an unremarkable exam, tendinopathy, mixed clusters, referred pain.
LAYOUT_CASES = ("disc-radiculopathy-8-weeks-severe", "cauda-equina-red-flags",
                "serious-pathology-cancer-night-pain", "normal-exam",
                "pht-runner-2-weeks-loading", "mixed-deep-gluteal-and-hamstring-origin-clusters",
                "same-story-age-25", "sij-postpartum")
#: A last page whose ink ends above this fraction of the page is "nearly empty" (a
#: lone line or two under the top margin reach about 0.08-0.12).
NEAR_EMPTY = 0.2
SIGNED = dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.timezone.utc)  # summer: BST in London
FOOTER = re.compile(r"http\S*posterior-thigh\S*.*?Page \d+ of \d+|Patient information · "
                    r"version \S+|Page \d+ of \d+")


def _case(stem: str) -> dict:
    return json.loads((CASES_DIR / f"{stem}.json").read_text())


def _exam_and_assessment(kb, case):
    exam = pipeline.exam_from_input(kb, case["answers"], patient=case["patient"],
                                    now=parse_aware(case["authored"]))
    return exam, pipeline.assess_exam(kb, exam).as_json()


def _amended_visit(case, exam, zone="Europe/London") -> render.Visit:
    return render.Visit(patient=case["patient"], exam_date=case["authored"][:10],
                        clinician="Dr Lee", identifier=exam.exam_id, revision=2,
                        amended=True, reason="SLR angle re-measured", signed_at=SIGNED,
                        time_zone=zone)


def _last_page_depth(pdf: bytes, prefix: str) -> float:
    shots = pdfs.pages_as_png(pdf, prefix=prefix, dpi=40)
    assert len(shots) == pdfs.page_count(pdf)
    return pdfs.ink_depth(shots[-1]) if len(shots) > 1 else 1.0


@pytest.mark.parametrize("stem", LAYOUT_CASES)
def test_the_summary_never_ends_on_a_lone_line(kb, stem) -> None:
    """The last page holds more than a line or two, and the sources are never alone at
    the top of a page: what precedes them comes with them."""
    case = _case(stem)
    exam, assessment = _exam_and_assessment(kb, case)
    pdf = render.summary_pdf(kb, exam, assessment, _amended_visit(case, exam))
    depth = _last_page_depth(pdf, f"{stem}-layout-summary")
    assert depth >= NEAR_EMPTY, f"{stem}: last of {pdfs.page_count(pdf)} pages ends at {depth:.2f}"
    pages = pdfs.page_texts(pdf)
    holding = [p for p in pages if "Sources [1]" in p]
    if not sources.numbered(assessment, kb.decision.citations).listed:
        assert not holding  # nothing cited (an unremarkable exam): no list to keep
        return
    assert len(holding) == 1, "the sources' heading is not with their first source"
    before = FOOTER.sub(" ", holding[0][:holding[0].index("Sources [1]")]).strip()
    assert len(before) > 40, f"{stem}: the sources open their page: {before!r}"


def test_a_full_exam_summary_does_not_end_near_empty(kb, form) -> None:
    """Every item answered (three pages): the refit still leaves no near-empty page."""
    case = _case("disc-radiculopathy-8-weeks-severe")
    answers = {item.link_id: layout.normal_answer(item) for item in form.answerable}
    answers.update(case["answers"])
    answers["patient.age-years"] = 45
    from plugin.core import drafts
    valid = drafts.check(form, answers).valid
    case = dict(case, answers={k: v for k, v in answers.items() if k in valid})
    exam, assessment = _exam_and_assessment(kb, case)
    pdf = render.summary_pdf(kb, exam, assessment, _amended_visit(case, exam))
    assert pdfs.page_count(pdf) <= 3
    assert _last_page_depth(pdf, "full-exam-layout-summary") >= NEAR_EMPTY


@pytest.mark.parametrize("zone, shown", [("Europe/London", "2026-07-01 11:00 BST"),
                                         ("UTC", "2026-07-01 10:00 UTC")])
def test_an_amended_summary_says_revision_reason_signer_and_time(kb, zone, shown) -> None:
    case = _case("disc-radiculopathy-8-weeks-severe")
    exam, assessment = _exam_and_assessment(kb, case)
    text = " ".join(pdfs.text_of(render.summary_pdf(
        kb, exam, assessment, _amended_visit(case, exam, zone))).split())
    assert f"Revision 2, amended · Signed by Dr Lee on {shown}" in text
    assert "Reason for the amendment: SLR angle re-measured" in text
    first = render.Visit(patient=case["patient"], exam_date="2026-07-01", clinician="Dr Lee",
                         revision=1, signed_at=SIGNED, time_zone=zone)
    text = " ".join(pdfs.text_of(render.summary_pdf(kb, exam, assessment, first)).split())
    assert f"Revision 1 · Signed by Dr Lee on {shown}" in text
    assert "amended" not in text.split("Findings")[0] and "Reason for the amendment" not in text


def test_abnormal_findings_are_bold_and_marked_with_a_key(kb) -> None:
    case = _case("disc-radiculopathy-8-weeks-severe")
    exam, assessment = _exam_and_assessment(kb, case)
    visit = _amended_visit(case, exam)
    text = " ".join(pdfs.text_of(render.summary_pdf(kb, exam, assessment, visit)).split())
    assert "▲ bold: abnormal or positive finding" in text
    assert "Lumbar spinous processes and paraspinals Not tender ▲ Tender" in text
    assert text.count("▲") >= 6
    page = render.summary_html(kb, exam, assessment, visit)
    assert '<b class="abn">▲&nbsp;Tender</b>' in page  # bold, not only the marker
    assert "▲&nbsp;Not tender" not in page and "▲&nbsp;Normal" not in page


def test_a_negative_red_flag_screen_is_one_line_and_a_positive_one_is_marked(kb) -> None:
    case = _case("normal-exam")
    exam, assessment = _exam_and_assessment(kb, case)
    asked = sum(1 for k in case["answers"] if k.startswith("red-flags."))
    text = " ".join(pdfs.text_of(render.summary_pdf(
        kb, exam, assessment, _amended_visit(case, exam))).split())
    assert f"Red-flag screen negative: {asked} of 12 asked." in text
    assert "Numbness around the anus" not in text  # not the twelve questions again
    case = _case("cauda-equina-red-flags")
    exam, assessment = _exam_and_assessment(kb, case)
    text = " ".join(pdfs.text_of(render.summary_pdf(
        kb, exam, assessment, _amended_visit(case, exam))).split())
    assert "screen negative" not in text
    assert "Red flags. ▲ Numbness around the anus, genitals or inner thighs: Yes" in text


def test_a_partly_asked_screen_counts_what_was_asked(form) -> None:
    raw = {"red-flags.fever": False, "red-flags.night-pain": False}
    section = next(p.item for p in layout.pages(form) if p.item.link_id == "red-flags")
    assert layout.negative_screen(form, section, raw) == "Red-flag screen negative: 2 of 12 asked"
    assert layout.negative_screen(form, section, {**raw, "red-flags.fever": True}) is None
    assert layout.negative_screen(form, section, {}) is None


def test_the_body_map_key_keeps_each_symbol_beside_its_label(kb) -> None:
    case = _case("disc-radiculopathy-8-weeks-severe")
    exam, assessment = _exam_and_assessment(kb, case)
    pdf = render.summary_pdf(kb, exam, assessment, _amended_visit(case, exam))
    lines = [" ".join(line.split()) for line in pdfs.text_of(pdf).splitlines()]
    for key in ("● familiar pain", "● tender", "○ not tender", "◌ not examined"):
        assert any(key in line for line in lines), (key, [l for l in lines if key[2:] in l])


def _items(page: str) -> list[str]:
    """Every list item and step of a handout's HTML, as text."""
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", "", li)).split())
            for li in re.findall(r"<li>(.*?)</li>", page, flags=re.S)]


@pytest.mark.parametrize("stem", LAYOUT_CASES)
def test_the_handout_fills_its_pages_and_never_splits_an_item(kb, stem) -> None:
    case = _case(stem)
    exam, assessment = _exam_and_assessment(kb, case)
    header = render.handout_header(exam, case["patient"], now=SIGNED,
                                   clinic_contact="Physio clinic, 01234 567890")
    for large in (False, True):
        pdf = render.handout_pdf(kb, assessment, large_print=large, header=header)
        kind = "large" if large else "regular"
        depth = _last_page_depth(pdf, f"{stem}-layout-handout-{kind}")
        assert depth >= NEAR_EMPTY, f"{stem} {kind}: last page ends at {depth:.2f}"
        pages = pdfs.page_texts(pdf)
        items = _items(render.handout_html(kb, assessment, large_print=large, header=header))
        assert items
        for item in items:
            on = [n for n, p in enumerate(pages, 1) if item in p]
            assert on, f"{stem} {kind}: {item!r} is split across pages"


def test_the_handout_names_the_patient_date_side_and_contact(kb) -> None:
    case = _case("disc-radiculopathy-8-weeks-severe")
    exam, assessment = _exam_and_assessment(kb, case)
    given = " ".join(case["patient"]["name"][0]["given"])
    header = render.handout_header(exam, case["patient"], now=SIGNED,
                                   clinic_contact="Physio clinic, 01234 567890")
    text = " ".join(pdfs.text_of(render.handout_pdf(kb, assessment, header=header)).split())
    day = dt.date.fromisoformat(case["authored"][:10])
    assert f"Name: {given} {case['patient']['name'][0]['family']}" in text
    assert f"Date: {day.day} {day:%B %Y}" in text and "Side: Right" in text
    assert "Questions? Contact us: Physio clinic, 01234 567890" in text
    plain = render.handout_header(exam, case["patient"], now=SIGNED)
    text = " ".join(pdfs.text_of(render.handout_pdf(kb, assessment, header=plain)).split())
    assert "Questions? Contact the clinic that examined you." in text


def test_under_a_red_flag_the_lead_still_comes_first(kb) -> None:
    case = _case("cauda-equina-red-flags")
    exam, assessment = _exam_and_assessment(kb, case)
    header = render.handout_header(exam, case["patient"], now=SIGNED, clinic_contact="x")
    text = " ".join(pdfs.text_of(render.handout_pdf(kb, assessment, header=header)).split())
    lead = kb.handouts.urgency[assessment["urgency"]].lead
    assert text.startswith(lead) and text.index("Name:") > len(lead)
    # an emergency says go now, and nothing else to do: no call to the clinic first
    assert assessment["urgency"] == "emergency" and "Questions?" not in text


def _drawing_widths(page: str) -> list[float]:
    """The laid-out width (CSS px) of every exercise drawing, from WeasyPrint's boxes."""
    import weasyprint

    from plugin.adapters.documents import pdf

    rendered = weasyprint.HTML(string=page, base_url=None, url_fetcher=pdf.SafeFetcher()).render(
        stylesheets=[pdf.stylesheet(n) for n in render.STYLESHEETS["handout"]])
    return [box.width for p in rendered.pages for box in p._page_box.descendants()
            if getattr(box, "element_tag", None) == "img"]


def test_large_print_enlarges_the_drawings(kb) -> None:
    case = _case("pht-runner-2-weeks-loading")
    _, assessment = _exam_and_assessment(kb, case)
    regular = _drawing_widths(render.handout_html(kb, assessment))
    large = _drawing_widths(render.handout_html(kb, assessment, large_print=True))
    assert regular and len(large) == len(regular)
    assert min(large) >= 1.5 * max(regular), (regular, large)
