"""The clinician summary and the patient handout, as people get them: real PDFs from
every golden case, read back as text (content in the right order) and rendered to PNG
pages (kept in tests/artifacts/pdf/ to look at); the handout's reading grade; escaping
of everything a person typed."""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import textstat

from plugin.adapters.documents import render
from plugin.core import drafts, layout
from plugin.record import pipeline
from plugin.core.datetimes import parse_aware
from tests.support import pdfs

CASES = sorted((Path(__file__).resolve().parent.parent / "data" / "cases").glob("*.json"))
#: Reading grade the handout must not exceed (Flesch-Kincaid, the issue's threshold).
MAX_GRADE = 8


def _case(path: Path) -> dict:
    return json.loads(path.read_text())


def _exam(kb, case):
    return pipeline.exam_from_input(kb, case["answers"], patient=case["patient"],
                                    now=parse_aware(case["authored"]))


def _summary(kb, case, **visit):
    exam = _exam(kb, case)
    assessment = pipeline.assess_exam(kb, exam).as_json()
    details = {"patient": case["patient"], "exam_date": case["authored"][:10],
               "clinician": "Dr Lee", "identifier": exam.exam_id}
    details.update(visit)
    return render.summary_pdf(kb, exam, assessment, render.Visit(**details)), assessment


def _in_order(text: str, *markers: str) -> None:
    positions = [text.find(m) for m in markers]
    assert all(p >= 0 for p in positions), [m for m, p in zip(markers, positions) if p < 0]
    assert positions == sorted(positions), list(zip(markers, positions))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_summary_of_every_case(kb, form, path) -> None:
    case = _case(path)
    pdf, assessment = _summary(kb, case)
    text = pdfs.text_of(pdf)
    flat = " ".join(text.split())
    pages = pdfs.page_count(pdf)
    assert pdf.startswith(b"%PDF") and 1 <= pages <= 3  # the README promises 1–3 pages
    family = case["patient"]["name"][0]["family"]
    markers = ["clinician summary", family, "Exam date", "Findings"]
    if assessment["red_flags"]:
        markers.insert(3, "Red flags")
    markers += ["Clinician's impression", "No impression recorded", "Differential",
                "not a diagnosis", "Suggested referrals (decision support)", "Sources"]
    _in_order(flat, *markers)
    suggested = [c["display"] for c in assessment["differential"] if c["suggested"]]
    for display in suggested:
        assert display in flat
    for candidate in assessment["differential"]:  # a diagnosis of exclusion says why
        if candidate["suggested"] and candidate.get("ranking_note"):
            assert "Ranking: Ranked below" in flat and "diagnosis of exclusion" in flat
            ranking = flat[flat.index("Ranking: Ranked below"):]
            assert re.match(r"[^\[]*\[\d+(, \d+)*\]", ranking), ranking[:400]  # its sources
    for referral in assessment["referrals"]:
        assert referral["display"].split(":")[0] in flat
    assert f"{form.url}|{form.version}" in flat.replace(" ", "") or form.url in flat
    assert f"knowledge {kb.decision.version}" in flat
    assert f"Page 1 of {pages}" in flat
    assert pdfs.is_tagged(pdf) and pdfs.pdfa_part(pdf) == "3A"
    shots = pdfs.pages_as_png(pdf, prefix=f"{path.stem}-summary")
    assert len(shots) == pages and all(s.stat().st_size > 1000 for s in shots)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_handout_of_every_case_reads_at_grade_8_or_below(kb, path) -> None:
    case = _case(path)
    assessment = pipeline.assess_exam(kb, _exam(kb, case)).as_json()
    pdf = render.handout_pdf(kb, assessment)
    text = pdfs.text_of(pdf)
    body = re.sub(r"Patient information · version \S+|Page \d+ of \d+", " ", text)
    grade = textstat.flesch_kincaid_grade(body)
    assert grade <= MAX_GRADE, f"{path.stem}: reading grade {grade}"
    suggested = [c["condition"] for c in assessment["differential"] if c["suggested"]]
    nerve = any(kb.handouts.for_condition(c).spine_or_nerve for c in suggested)
    flat = " ".join(text.split())
    if assessment["urgency"] != "routine":
        # a red flag: the urgency's instruction first, then why, the signs; no condition
        # advice, no exercises, no routine follow-up
        lead = kb.handouts.urgency[assessment["urgency"]]
        assert " ".join(body.split()).startswith(lead.lead), body[:200]
        _in_order(flat, lead.lead, lead.signs_title)
        for absent in ("What we think is going on", "first exercises", "When to come back",
                       kb.handouts.emergency.title):
            assert absent not in flat, absent
        assert "suggest" in text.lower()
        pdfs.pages_as_png(pdf, prefix=f"{path.stem}-handout")
        return
    if nerve or not suggested:
        assert kb.handouts.emergency.title in text
    else:
        assert kb.handouts.emergency.title not in text
    if suggested:
        top = kb.handouts.for_condition(suggested[0])
        flat = " ".join(text.split())
        _in_order(flat, "What we think is going on", top.title, "What to do",
                  "What to avoid", "first exercises", "When to come back")
    assert "suggest" in text.lower()  # it says it is a suggestion
    pdfs.pages_as_png(pdf, prefix=f"{path.stem}-handout")


def test_large_print_is_larger(kb) -> None:
    case = _case(CASES[0])
    assessment = pipeline.assess_exam(kb, _exam(kb, case)).as_json()
    regular = render.handout_pdf(kb, assessment)
    large = render.handout_pdf(kb, assessment, large_print=True)
    assert pdfs.page_count(large) > pdfs.page_count(regular)
    assert "large" in render.handout_html(kb, assessment, large_print=True)
    pdfs.pages_as_png(large, prefix="large-print-handout")


def test_typed_text_is_escaped_and_never_fetched(kb, tmp_path) -> None:
    case = _case(CASES[0])
    marker = tmp_path / "secret.txt"
    marker.write_text("TOP-SECRET-MARKER")
    evil = f'<img src="file://{marker}"><link rel="attachment" href="file://{marker}">'
    patient = dict(case["patient"], name=[{"family": evil, "given": ["<b>x</b>"]}],
                   identifier=[{"value": "<script>1</script>"}])
    pdf, _ = _summary(kb, dict(case, patient=patient), clinician="<i>Dr</i>",
                      encounter="<svg onload=x>")
    html = render.summary_html(kb, _exam(kb, dict(case, patient=patient)),
                               pipeline.assess_exam(kb, _exam(kb, case)).as_json(),
                               render.Visit(patient=patient, exam_date="2026-11-21"))
    assert evil not in html and "&lt;img src=" in html
    text = pdfs.text_of(pdf)
    assert "<img src=" in text and "<script>1</script>" in text  # shown, as text
    assert b"TOP-SECRET-MARKER" not in pdfs.decoded_bytes(pdf) and pdfs.embedded_files(pdf) == []


def test_a_draft_summary_says_so(kb) -> None:
    pdf, _ = _summary(kb, _case(CASES[0]), signed=False, clinician=None)
    assert "draft, not signed" in pdfs.text_of(pdf)


def test_exam_date_prefers_the_exam_own_time() -> None:
    now = dt.datetime(2026, 11, 21, 9, tzinfo=dt.timezone.utc)
    assert render.exam_date("2026-10-01T10:00:00+02:00", now) == "2026-10-01"
    assert render.exam_date(None, now) == "2026-11-21"


GOLDEN = next(p for p in CASES if p.stem == "disc-radiculopathy-8-weeks-severe")


def _realistic(form, case) -> dict:
    """A full, realistic exam: every item normal or negative, the case's answers over it,
    only what the tablet would keep (as bench/bench_documents.py's exam (b))."""
    answers = {item.link_id: layout.normal_answer(item) for item in form.answerable}
    answers.update(case["answers"])
    answers["patient.age-years"] = 45  # the case's Patient on the day of the exam
    valid = drafts.check(form, answers).valid
    return {k: v for k, v in answers.items() if k in valid}


def test_summary_of_a_full_realistic_exam_fits_three_pages(kb, form) -> None:
    case = _case(GOLDEN)
    answers = _realistic(form, case)
    assert len(answers) == len(form.answerable)  # every item answered
    pdf, _ = _summary(kb, dict(case, answers=answers))
    assert pdfs.page_count(pdf) <= 3
    flat = " ".join(pdfs.text_of(pdf).split())
    # the unremarkable rest is grouped per section, the abnormal findings stand out
    _in_order(flat, "Hamstring tests", "Normal, negative or no Puranen-Orava test",
              "Deep gluteal tests", "Normal, negative or no FAIR test")


def test_summary_of_a_golden_case_fits_two_pages(kb) -> None:
    pdf, _ = _summary(kb, _case(GOLDEN))
    assert pdfs.page_count(pdf) <= 2


def test_left_and_right_findings_share_one_row(kb, form) -> None:
    """Sided findings: one table, Finding | Left | Right, left then right on one row;
    sections without sides are paragraphs ("Label: value; ...")."""
    case = _case(GOLDEN)
    pdf, _ = _summary(kb, case)
    flat = " ".join(pdfs.text_of(pdf).split())
    assert "Finding Left Right" in flat
    # abnormal or positive findings carry the marker (and are bold); the rest do not
    for row in ("SLR: symptoms reproduced Hamstring stretch only ▲ Familiar leg pain below the knee",
                "Slump: symptoms reproduced – ▲ Familiar symptoms reproduced",
                "L5: great toe extension / ankle dorsiflexion 5 ▲ 4",
                "L5: dorsum of foot Normal ▲ Reduced",
                "Lumbar spinous processes and paraspinals Not tender ▲ Tender"):
        assert row in flat, row
    assert "History. Affected side: Right; Onset: Sudden;" in flat  # neither is judged
    exam = _exam(kb, case)
    html = render.summary_html(kb, exam, pipeline.assess_exam(kb, exam).as_json(),
                               render.Visit(patient=case["patient"], exam_date="2026-11-19"))
    assert html.count('<table class="findings">') == 1
    assert '<th colspan="3" scope="rowgroup">Straight leg raise</th>' in html
    assert "rowgroup\">History<" not in html  # no sides: a paragraph, not a table section
