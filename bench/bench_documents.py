"""Benchmark: time to render the clinician summary and the patient handout of a full exam.

Target (issue "Benchmark: time to render the summary and the handout for a full exam"):
each document within 1.5x of WeasyPrint's own time for a plain document of the same page
count.
- exams, both judged (a full exam: every item answered, both sides; a FHIR Patient with
  name, birthDate and identifier):
  (a) "complete": ``bench_extract.complete_answers``, every item answered and nearly
      everything abnormal: the stress case (the most rows, nothing condenses);
  (b) "realistic": every item answered with its normal or negative value
      (``layout.normal_answer``: the item's ``normal_value``, booleans False, an
      unremarkable option from ``layout.UNREMARKABLE`` where there is one, else the first
      option, integers at their minimum), overlaid with the golden case ``disc-radiculopathy-8-weeks-severe`` and
      ``patient.age-years`` 36, keeping only the answers ``drafts.check`` finds valid
      (answers its enableWhen rules out are dropped, as the tablet would).
- ours: ``render.summary_pdf`` / ``render.handout_pdf``, from the exam and its assessment to
  PDF bytes: Jinja HTML, the safe fetcher, the render thread and WeasyPrint, in the
  default variant, PDF/A-3a. Reported beside it, to show where the time goes: the HTML
  step alone, and WeasyPrint called directly on our HTML (same fetcher and options,
  without pdf.render's thread and colour profile: our wrapper's share).
- baseline (judged): a plain HTML document (no stylesheet files; DejaVu Sans; lorem
  paragraphs and small tables) with the *most* paragraphs that still has the document's
  page count (counted with pypdf; found by bisection): every page full, as "a plain
  document of N pages" naturally reads, timed as ``weasyprint.HTML(string=html)
  .write_pdf(pdf_variant="pdf/a-3a")``, the variant we render (like with like). The
  issue's owner chose this reading: the strict one below compares N pages of ours with
  N-1 full pages and an almost empty last one.
- also reported, never judged: the strict reading, the plain document with the *fewest*
  paragraphs that has that many pages (its last page nearly empty), timed plain and as
  PDF/A-3a ("strict", "vs strict"; "plain", "vs plain").
Each timing is the median of ``N`` runs (default 15; ``--runs N``) after warm-ups (the
first render imports WeasyPrint and caches fonts), ours and the baselines interleaved so
drift hits them alike. Run with ``scripts/bench`` (``taskset -c 0`` for one core); not part
of the test suite. Exits 1 naming any document of either exam over target.
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ has no __init__

from bench_extract import complete_answers  # noqa: E402
from plugin import knowledge  # noqa: E402
from plugin.adapters.documents import pdf, render  # noqa: E402
from plugin.config import DEFAULTS  # noqa: E402
from plugin.core import drafts, layout  # noqa: E402
from plugin.record import pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_CASE = ROOT / "tests" / "data" / "cases" / "disc-radiculopathy-8-weeks-severe.json"
TARGET_RATIO = 1.5
RUNS, WARMUPS = 15, 2
VARIANT = "pdf/a-3a"  # our default, so the baseline the target is checked against
EXAM_DATE = "2026-11-21"
NOW = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.timezone.utc)
PATIENT = {"resourceType": "Patient", "id": "bench",
           "name": [{"family": "Bench", "given": ["Ana"]}], "birthDate": "1990-05-01",
           "identifier": [{"system": "urn:example:mrn", "value": "B-1"}]}

LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
         "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
         "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute "
         "irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla "
         "pariatur.")


def realistic_answers(form: Any) -> dict[str, Any]:
    """Exam (b): every item normal or negative, overlaid with the golden case, age 36,
    only the valid answers kept."""
    answers = {item.link_id: layout.normal_answer(item) for item in form.answerable}
    answers.update(json.loads(GOLDEN_CASE.read_text())["answers"])
    answers["patient.age-years"] = 36  # matches the benchmark Patient's birthDate
    valid = drafts.check(form, answers).valid
    return {k: v for k, v in answers.items() if k in valid}


def pages(pdf_bytes: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf_bytes)).pages)


def plain_html(units: int) -> str:
    """A plain document: ``units`` lorem paragraphs, every third followed by a small table."""
    body = []
    for i in range(units):
        body.append(f"<p>{i + 1}. {LOREM}</p>")
        if i % 3 == 2:
            body.append("<table>" + "".join(f"<tr><td>Item {i + 1}.{r}</td><td>{LOREM[:60]}"
                                            f"</td></tr>" for r in range(1, 4)) + "</table>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Plain document</title>"
            "<style>body { font-family: 'DejaVu Sans'; }</style></head>"
            f"<body><h1>Plain document</h1>{''.join(body)}</body></html>")


def plain_pdf(html: str, variant: str | None = None) -> bytes:
    import weasyprint

    return weasyprint.HTML(string=html).write_pdf(pdf_variant=variant)


def direct_pdf(html: str, kind: str) -> bytes:
    """WeasyPrint straight on our HTML, as ``pdf.render`` calls it (same fetcher, options
    and parsed stylesheets), minus its wrapper."""
    import weasyprint

    return weasyprint.HTML(string=html, base_url=None, url_fetcher=pdf.SafeFetcher()).write_pdf(
        pdf_variant=VARIANT, presentational_hints=False,
        stylesheets=[pdf.stylesheet(name) for name in render.STYLESHEETS[kind]])


def _fewest_units(min_pages: int) -> int:
    """The fewest paragraphs whose plain document has at least ``min_pages`` pages."""
    hi = 1
    while pages(plain_pdf(plain_html(hi))) < min_pages:
        hi *= 2
    lo = hi // 2  # pages(lo) < min_pages (or lo == 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pages(plain_pdf(plain_html(mid))) < min_pages:
            lo = mid
        else:
            hi = mid
    return hi


def matching_plain(target_pages: int) -> tuple[str, int]:
    """The plain document with the fewest paragraphs that has ``target_pages`` pages."""
    hi = _fewest_units(target_pages)
    html = plain_html(hi)
    found = pages(plain_pdf(html))
    assert found == target_pages, f"plain document: {found} pages, wanted {target_pages}"
    assert pages(plain_pdf(html, VARIANT)) == target_pages  # the PDF/A render lays out alike
    return html, hi


def fullest_plain(target_pages: int) -> tuple[str, int]:
    """The plain document with the most paragraphs that still has ``target_pages`` pages
    (the lenient reading: every page full)."""
    units = _fewest_units(target_pages + 1) - 1
    html = plain_html(units)
    found = pages(plain_pdf(html))
    assert found == target_pages, f"full plain document: {found} pages, wanted {target_pages}"
    assert pages(plain_pdf(html, VARIANT)) == target_pages
    return html, units


def timed(fns: dict[str, Callable[[], Any]], runs: int) -> dict[str, float]:
    """Median ms of each function over ``runs`` rounds, the functions interleaved."""
    for fn in fns.values():
        for _ in range(WARMUPS):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(s) for name, s in samples.items()}


def main() -> None:
    # WeasyPrint 70's own PDF/A path (the baseline's write_pdf(pdf_variant=...)) opens its
    # sRGB profile and never closes it: a ResourceWarning per render, harmless here.
    warnings.simplefilter("ignore", ResourceWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help=f"timed runs (default {RUNS})")
    runs = parser.parse_known_args()[0].runs  # scripts/bench passes its arguments to all

    kb = knowledge.load(DEFAULTS["QUESTIONNAIRES_DIR"], DEFAULTS["MAPPINGS_DIR"])
    form = kb.forms[pipeline.DEFAULT_FORM]
    exams = {"complete": complete_answers(form), "realistic": realistic_answers(form)}
    documents: dict[str, tuple[Callable[[], str], Callable[[], bytes]]] = {}
    for label, answers in exams.items():
        exam = pipeline.exam_from_input(kb, answers, patient=PATIENT, now=NOW)
        assessment = pipeline.assess_exam(kb, exam).as_json()
        visit = render.Visit(patient=PATIENT, exam_date=EXAM_DATE, clinician="Dr Lee",
                             identifier=exam.exam_id)
        documents[f"{label} summary"] = (
            lambda exam=exam, a=assessment, v=visit: render.summary_html(kb, exam, a, v),
            lambda exam=exam, a=assessment, v=visit: render.summary_pdf(kb, exam, a, v))
        documents[f"{label} handout"] = (lambda a=assessment: render.handout_html(kb, a),
                                         lambda a=assessment: render.handout_pdf(kb, a))

    baselines: dict[int, tuple[str, int, str, int]] = {}  # by page count
    results = {}
    for name, (html_fn, pdf_fn) in documents.items():
        count = pages(pdf_fn())  # also the first render: imports WeasyPrint, loads fonts
        if count not in baselines:
            baselines[count] = (*fullest_plain(count), *matching_plain(count))
        full, full_units, strict, units = baselines[count]
        ours_html = html_fn()
        times = timed({"html": html_fn, "ours": pdf_fn,
                       "direct": lambda h=ours_html, kind=name.split()[-1]: direct_pdf(h, kind),
                       "full": lambda full=full: plain_pdf(full, VARIANT),
                       "strict": lambda strict=strict: plain_pdf(strict, VARIANT),
                       "plain": lambda strict=strict: plain_pdf(strict)}, runs)
        results[name] = {"pages": count, "units": units, "full_units": full_units, **times,
                         "ratio": times["ours"] / times["full"],
                         "ratio_strict": times["ours"] / times["strict"],
                         "ratio_plain": times["ours"] / times["plain"]}

    print("summary and handout of two full exams, both sides (" + ", ".join(
        f"{label}: {len(answers)} answers" for label, answers in exams.items())
        + f"): median of {runs} runs after {WARMUPS} warm-ups, interleaved; ours = {VARIANT}")
    print(f"  {'document':<18}  {'pages':>5}  {'HTML ms':>7}  {'direct ms':>9}  {'ours ms':>7}  "
          f"{'full ms':>7}  {'ratio':>5}  target <= {TARGET_RATIO}x full  | "
          f"{'strict ms':>9}  {'vs strict':>9}  {'plain ms':>8}  {'vs plain':>8}")
    for name, r in results.items():
        verdict = "OK" if r["ratio"] <= TARGET_RATIO else "OVER TARGET"
        print(f"  {name:<18}  {r['pages']:>5}  {r['html']:>7.1f}  {r['direct']:>9.1f}  "
              f"{r['ours']:>7.1f}  {r['full']:>7.1f}  {r['ratio']:>4.2f}x  {verdict:<19}  | "
              f"{r['strict']:>9.1f}  {r['ratio_strict']:>8.2f}x  {r['plain']:>8.1f}  "
              f"{r['ratio_plain']:>7.2f}x")
    print("  full (judged): WeasyPrint's PDF/A-3a write_pdf() of the fullest plain lorem document "
          "with the same page count (" + ", ".join(
              f"{n} pages: {b[1]} paragraphs" for n, b in sorted(baselines.items())) + ")")
    print("  strict (reported, not judged): the plain document with the fewest paragraphs and "
          "that page count, its last page nearly empty (" + ", ".join(
              f"{n} pages: {b[3]} paragraphs" for n, b in sorted(baselines.items()))
          + "), PDF/A-3a; plain: the same without PDF/A")
    print("  direct: WeasyPrint's write_pdf() on our HTML with our fetcher and options, without "
          "pdf.render's thread")
    misses = [f"{name} ({r['ratio']:.2f}x)" for name, r in results.items()
              if r["ratio"] > TARGET_RATIO]
    print(f"  (target <= {TARGET_RATIO}x WeasyPrint's PDF/A-3a time for a full plain document: "
          f"{'OK' if not misses else 'MISSED by ' + ', '.join(misses)})")
    sys.exit(1 if misses else 0)


if __name__ == "__main__":
    main()
