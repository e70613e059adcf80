"""The clinician summary and the patient handout: their HTML from Jinja templates, and
their PDFs through the safe renderer (``pdf.render``).

Templates are the package's own, with autoescape on and undefined names an error: every
value that came from a person (names, identifiers, typed answers) is escaped. Assets
are referenced as ``app-static:`` URLs, the only ones the renderer will fetch.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ...core import answers, layout, patient as patient_mod, responses
from ...core.documents import Document
from ...core.responses import Exam
from ...decision import sources as sources_mod
from . import pdf

TEMPLATES = Path(__file__).resolve().parent / "templates"
KINDS = ("summary", "handout")
SUMMARY_TITLE = "Posterior thigh exam: clinician summary"
HANDOUT_TITLE = "About your thigh pain"
#: Each document's stylesheets (in ``static/``), handed to ``pdf.render`` by name.
STYLESHEETS = {"summary": ("base.css", "summary.css"), "handout": ("base.css", "handout.css")}


@dataclass(frozen=True)
class Visit:
    """Who and when, as printed in the summary's header and footer."""

    patient: Mapping[str, Any]
    exam_date: str
    clinician: str | None = None
    encounter: str | None = None
    identifier: str | None = None
    signed: bool = True


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["layout"] = layout
    return env


def summary_html(kb: Any, exam: Exam, assessment: Mapping[str, Any], visit: Visit) -> str:
    """The clinician summary: header, red flags, findings left | right, body map,
    differential with its evidence, referrals, PT focus, the disclaimer and sources."""
    form = exam.form
    raw = {link_id: _plain(form, link_id, values) for link_id, values in exam.answers.items()}
    sites = [(site, raw.get(site.left.link_id), raw.get(site.right.link_id))
             for p in layout.pages(form) for site in p.sites]
    sections = layout.summary(form, raw)
    return _environment().get_template("summary.html").render(
        title=SUMMARY_TITLE, visit=visit, form=form,
        name=patient_mod.display_name(visit.patient, family_first=True) or "(no name recorded)",
        born=visit.patient.get("birthDate"), patient_identifier=_identifier(visit.patient),
        narrative=[(p, _narrative(rows)) for p, rows in sections
                   if not layout.lateral(form, p.item)],
        lateral=_condensed([(p, rows) for p, rows in sections if layout.lateral(form, p.item)]),
        sites=sites if any(p.sites for p, _ in sections) else [], assessment=assessment,
        sources=sources_mod.numbered(assessment, kb.decision.citations),
        shown=sources_mod.shown_evidence, knowledge_version=kb.decision.version)


def handout_html(kb: Any, assessment: Mapping[str, Any], *, large_print: bool = False) -> str:
    """The patient handout. Routine: the most likely condition in plain words, first
    exercises, when to come back, and the emergency box whenever the spine or a nerve
    may be involved. Under a red flag the urgency's own content replaces all of that
    (``urgent_content``): nothing that could delay care."""
    handouts = kb.handouts
    suggested = [c for c in assessment["differential"] if c["suggested"]]
    top = handouts.for_condition(suggested[0]["condition"]) if suggested else None
    nerve = any(handouts.for_condition(c["condition"]).spine_or_nerve for c in suggested)
    return _environment().get_template("handout.html").render(
        title=HANDOUT_TITLE, handouts=handouts, top=top, urgency=assessment["urgency"],
        emergency_box=nerve or not suggested, red_flag=urgent_content(handouts, assessment),
        large_print=large_print)


@dataclass(frozen=True)
class UrgentContent:
    """A red-flag handout's words, gathered from the raised flags' data."""

    lead: str
    why: tuple[str, ...]
    arranged_title: str | None
    arranged: tuple[str, ...]
    until_seen: tuple[str, ...]
    signs_title: str
    signs: tuple[str, ...]


def urgent_content(handouts: Any, assessment: Mapping[str, Any]) -> UrgentContent | None:
    """None when routine; otherwise the lead of the assessment's urgency and, from the
    raised red flags of that urgency (all of them when urgent), why in a sentence each,
    what is being arranged, what to do until then and the signs that mean "go now"."""
    level = assessment["urgency"]
    if level == "routine":
        return None
    lead = handouts.urgency[level]
    flags = [handouts.red_flags[f["id"]] for f in assessment["red_flags"]
             if level == "urgent" or f["urgency"] == level]
    signs = [s for f in flags for s in f.go_now]
    if level == "emergency" or any(f.emergency_signs for f in flags):
        signs += handouts.emergency.signs
    return UrgentContent(
        lead.lead, tuple(dict.fromkeys(f.why for f in flags)), lead.arranged_title,
        tuple(dict.fromkeys(a for f in flags for a in f.arranged)) if level == "urgent" else (),
        tuple(dict.fromkeys(u for f in flags for u in f.until_seen)) if level == "urgent" else (),
        lead.signs_title, tuple(dict.fromkeys(signs)))


def summary_pdf(kb: Any, exam: Exam, assessment: Mapping[str, Any], visit: Visit, *,
                variant: str | None = "pdf/a-3a") -> bytes:
    return pdf.render(summary_html(kb, exam, assessment, visit), variant=variant,
                      title=SUMMARY_TITLE, stylesheets=STYLESHEETS["summary"])


def handout_pdf(kb: Any, assessment: Mapping[str, Any], *, large_print: bool = False,
                variant: str | None = "pdf/a-3a") -> bytes:
    return pdf.render(handout_html(kb, assessment, large_print=large_print), variant=variant,
                      title=HANDOUT_TITLE, stylesheets=STYLESHEETS["handout"])


def summary_document(kb: Any, exam: Exam, patient: Mapping[str, Any] | None, *,
                     assessment: Mapping[str, Any], clinician: str | None,
                     now: dt.datetime) -> Document:
    """The clinician summary of ``exam``, as every surface makes it (tablet, CLI, the
    record for the EHR): assessed by the engine, dated by the exam, marked as a draft
    unless the response is completed or amended."""
    pdf = summary_pdf(kb, exam, assessment, visit_of(exam, patient, clinician, now))
    return Document("summary", SUMMARY_TITLE, pdf)


def visit_of(exam: Exam, patient: Mapping[str, Any] | None, clinician: str | None,
             now: dt.datetime) -> Visit:
    """The summary's who and when for ``exam``: dated by the exam, marked as a draft
    unless the response is completed or amended."""
    return Visit(patient=patient or {}, clinician=clinician,
                 exam_date=exam_date(exam.context.authored, now), identifier=exam.exam_id,
                 signed=exam.context.status in responses.FINISHED)


def pdf_from_html(template: str, html: str) -> bytes:
    """The PDF of a document's HTML made earlier by ``summary_html`` (``template``
    "summary") or ``handout_html`` ("handout"): a signed revision's documents are
    rendered from the HTML frozen at its signature."""
    return pdf.render(html, title=SUMMARY_TITLE if template == "summary" else HANDOUT_TITLE,
                      stylesheets=STYLESHEETS[template])


def exam_date(authored: str | None, fallback: dt.datetime) -> str:
    """The date part of ``authored`` (the exam's own time), else of ``fallback``."""
    return (authored or fallback.isoformat())[:10]


#: The row that groups a section's normal, negative and "no" answers.
UNREMARKABLE_LABEL = "Normal, negative or no"
#: Dropped from a question's text where it reads as a label ("Imaging so far").
ALL_THAT_APPLY = " (all that apply)"


def _narrative(rows: list[layout.Row]) -> str:
    """A section without left and right as one run of text, as a clinical letter reads:
    ``Label: value; Label: value.`` then ``Normal, negative or no: label; label.`` One
    paragraph instead of a table: each table cell is a box WeasyPrint lays out, styles
    and tags, and those cells were most of the summary's render time."""
    def label(text: str) -> str:
        return text[:-len(ALL_THAT_APPLY)] if text.endswith(ALL_THAT_APPLY) else text

    def phrase(row: layout.Row) -> str:
        name = label(row.label)
        return f"{name} {row.value}" if name.endswith("?") else f"{name}: {row.value}"

    shown, plain = _grouped(rows)
    sentences = ["; ".join(phrase(r) for r in shown)] if shown else []
    if plain:
        sentences.append(f"{UNREMARKABLE_LABEL}: " + "; ".join(label(r.label) for r in plain))
    return " ".join(s if s.endswith(".") else f"{s}." for s in sentences)


def _condensed(summary: list[tuple[Any, list[layout.Row]]]) -> list[tuple[Any, list[layout.Row]]]:
    """Each section's normal, negative and "no" answers grouped on one line, so the
    abnormal findings stand out and the summary stays short; the rest row by row."""
    result = []
    for page, rows in summary:
        shown, plain = _grouped(rows)
        if plain:
            shown.append(layout.Row(UNREMARKABLE_LABEL,
                                    value="; ".join(r.label for r in plain)))
        result.append((page, shown))
    return result


def _grouped(rows: list[layout.Row]) -> tuple[list[layout.Row], list[layout.Row]]:
    """The rows to show one by one, and the unremarkable ones to group (two or more)."""
    plain = [r for r in rows if r.unremarkable]
    if len(plain) < 2:
        return list(rows), []
    return [r for r in rows if not r.unremarkable], plain


def _plain(form: Any, link_id: str, values: tuple[Any, ...]) -> Any:
    item = form.index[link_id]
    plain = [answers.plain_value(item, v) for v in values]
    return plain if item.repeats else plain[0]


def _identifier(patient: Mapping[str, Any]) -> str | None:
    values = [i.get("value") for i in patient.get("identifier") or [] if i.get("value")]
    return values[0] if values else None
