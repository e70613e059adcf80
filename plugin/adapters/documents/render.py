"""The clinician summary and the patient handout: their HTML from Jinja templates, and
their PDFs through the safe renderer (``pdf.render``).

Templates are the package's own, with autoescape on and undefined names an error: every
value that came from a person (names, identifiers, typed answers) is escaped. Assets
are referenced as ``app-static:`` URLs, the only ones the renderer will fetch.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ...core import answers, datetimes, layout, patient as patient_mod, responses
from ...core.documents import Document
from ...core.responses import Exam
from ...decision import impression as impression_mod, sources as sources_mod
from ...decision.impression import Impression
from . import pdf

TEMPLATES = Path(__file__).resolve().parent / "templates"
KINDS = ("summary", "handout")
SUMMARY_TITLE = "Posterior thigh exam: clinician summary"
HANDOUT_TITLE = "About your thigh pain"
#: Each document's stylesheets (in ``static/``), handed to ``pdf.render`` by name.
STYLESHEETS = {"summary": ("base.css", "summary.css", "progress.css"), "handout": ("base.css", "handout.css")}
#: Tried in order when a document's last page would be nearly empty (``pdf.render``).
REFITS = {"summary": ("summary-tight.css",),
          "handout": ("handout-tight.css", "handout-loose.css")}
#: A last page filled less than this (of the page's height) is "nearly empty": a lone
#: line or two. A fifth is about seven lines of the handout's regular print.
MIN_LAST_PAGE = 0.2


@dataclass(frozen=True)
class Visit:
    """Who and when, as printed in the summary's header and footer.

    Everything the summary prints about the record's state is an explicit field (never
    read from a request or the app while rendering), so a caller can freeze the inputs
    of a signature and render them again byte for byte: the ``revision`` number, whether
    it is ``amended`` and the ``reason``, the signer (``clinician``) and ``signed_at``
    (shown in ``time_zone``, the clinic's IANA zone)."""

    patient: Mapping[str, Any]
    exam_date: str
    clinician: str | None = None
    encounter: str | None = None
    identifier: str | None = None
    signed: bool = True
    revision: int | None = None
    amended: bool = False
    reason: str | None = None
    signed_at: dt.datetime | None = None
    time_zone: str = "UTC"

    @property
    def signed_when(self) -> str | None:
        """The signing time in the clinic's zone (``2026-07-01 11:00 BST``)."""
        return datetimes.local(self.signed_at, self.time_zone) if self.signed_at else None


@dataclass(frozen=True)
class HandoutHeader:
    """Who the handout is for and who to call: the patient's name, the exam's date (in
    the clinic's zone), the affected side in words and the clinic's contact line
    (``CLINIC_CONTACT``). Explicit, like ``Visit``, so it can be frozen at signature."""

    patient_name: str | None = None
    date: str | None = None
    side: str | None = None
    clinic_contact: str | None = None


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["layout"] = layout
    env.filters["plain_date"] = plain_date
    return env


def plain_date(iso: str) -> str:
    """An ISO date as a patient reads it: ``2026-07-01`` -> ``1 July 2026`` (the
    handout's date; no 07/01 that reads as two different days)."""
    try:
        day = dt.date.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{day.day} {day:%B %Y}"


def summary_heading(form: Any) -> str:
    """The summary's heading: says which visit it records (a follow-up names its own
    form, "Posterior thigh pain follow-up: clinician summary"); the initial exam's is
    ``SUMMARY_TITLE``. It is also the PDF's and the DocumentReference's title."""
    if form.id == "posterior-thigh-exam":
        return SUMMARY_TITLE
    return f"{form.title}: clinician summary"


def summary_html(kb: Any, exam: Exam, assessment: Mapping[str, Any], visit: Visit, *,
                 impression: Impression = impression_mod.NONE,
                 episode: Mapping[str, Any] | None = None, progress: Any = None,
                 proms: Sequence[Any] = ()) -> str:
    """The clinician summary: header, red flags, findings left | right, body map, the
    visit's outcome measures (``core.prom_results.PromResult``: scores, bands, change,
    copyright), differential with its evidence, referrals, PT focus, the disclaimer and
    sources; a follow-up's ``episode`` ("Since last visit") and ``progress``
    (``record.progress.Progress``): the charts across visits, when there are two signed
    visits or more."""
    form = exam.form
    raw = {link_id: _plain(form, link_id, values) for link_id, values in exam.answers.items()}
    sites = [(site, raw.get(site.left.link_id), raw.get(site.right.link_id))
             for p in layout.pages(form) for site in p.sites]
    sections = layout.summary(form, raw, exam.one_step)
    return _environment().get_template("summary.html").render(
        title=summary_heading(form), visit=visit, form=form,
        name=patient_mod.display_name(visit.patient, family_first=True) or "(no name recorded)",
        born=visit.patient.get("birthDate"), patient_identifier=_identifier(visit.patient),
        narrative=[(p, _narrative(rows), all(r.whole for r in rows)) for p, rows in sections
                   if not layout.lateral(form, p.item)],
        lateral=_condensed([(p, rows) for p, rows in sections if layout.lateral(form, p.item)]),
        sites=sites if any(p.sites for p, _ in sections) else [], assessment=assessment,
        sources=sources_mod.numbered(assessment, kb.decision.citations),
        shown=sources_mod.shown_evidence, knowledge_version=kb.decision.version,
        abnormal_key=layout.ABNORMAL_KEY, mark=layout.ABNORMAL_MARK,
        decided=impression_mod.view(kb.decision, impression, assessment),
        episode=episode,  # a follow-up's "Since last visit" (decision.visit_report)
        progress=progress, proms=proms)


def handout_html(kb: Any, assessment: Mapping[str, Any], *, large_print: bool = False,
                 header: HandoutHeader | None = None,
                 impression: Impression = impression_mod.NONE,
                 episode: Mapping[str, Any] | None = None) -> str:
    """The patient handout. Routine: the most likely condition in plain words, first
    exercises, when to come back, and the emergency box whenever the spine or a nerve
    may be involved. Under a red flag the urgency's own content replaces all of that
    (``urgent_content``): nothing that could delay care.

    It follows the clinician's plan: their working diagnosis, when they recorded one,
    is the condition explained. The urgency stays the assessment's: a plan that drops
    the emergency referral never turns an emergency handout into a routine one."""
    handouts = kb.handouts
    suggested = [c for c in assessment["differential"] if c["suggested"]]
    chosen = impression.condition or (suggested[0]["condition"] if suggested else None)
    top = (handouts.for_condition(chosen)
           if chosen and chosen in handouts.conditions else None)
    nerve = any(handouts.for_condition(c["condition"]).spine_or_nerve for c in suggested)
    return _environment().get_template("handout.html").render(
        title=HANDOUT_TITLE, handouts=handouts, top=top, urgency=assessment["urgency"],
        emergency_box=nerve or not suggested, red_flag=urgent_content(handouts, assessment),
        large_print=large_print, header=header or HandoutHeader(), episode=episode)


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
                variant: str | None = "pdf/a-3a",
                impression: Impression = impression_mod.NONE,
                episode: Mapping[str, Any] | None = None,
                proms: Sequence[Any] = ()) -> bytes:
    return pdf.render(summary_html(kb, exam, assessment, visit, impression=impression,
                                   episode=episode, proms=proms),
                      variant=variant,
                      title=summary_heading(exam.form), stylesheets=STYLESHEETS["summary"],
                      refits=REFITS["summary"], min_last_page=MIN_LAST_PAGE)


def handout_pdf(kb: Any, assessment: Mapping[str, Any], *, large_print: bool = False,
                header: HandoutHeader | None = None,
                variant: str | None = "pdf/a-3a",
                impression: Impression = impression_mod.NONE,
                episode: Mapping[str, Any] | None = None) -> bytes:
    return pdf.render(handout_html(kb, assessment, large_print=large_print, header=header,
                                   impression=impression, episode=episode),
                      variant=variant, title=HANDOUT_TITLE, stylesheets=STYLESHEETS["handout"],
                      refits=REFITS["handout"], min_last_page=MIN_LAST_PAGE)


#: The question whose answer is the affected side, printed on the handout.
AFFECTED_SIDE = "history.affected-side"


def handout_header(exam: Exam, patient: Mapping[str, Any] | None, *, now: dt.datetime,
                   time_zone: str = "UTC", clinic_contact: str = "") -> HandoutHeader:
    """The handout's header from the exam: the patient's name as they are addressed
    (given names first), the exam's date in the clinic's zone, the affected side as
    answered, and the clinic's contact line."""
    side = None
    item = exam.form.index.get(AFFECTED_SIDE)
    if item is not None and exam.answers.get(AFFECTED_SIDE):
        side = layout.display(item, _plain(exam.form, AFFECTED_SIDE, exam.answers[AFFECTED_SIDE]))
    name = patient_mod.display_name(patient, family_first=False) if patient else None
    return HandoutHeader(patient_name=name or None,
                         date=exam_date(exam.context.authored, now, time_zone),
                         side=side, clinic_contact=clinic_contact or None)


def summary_document(kb: Any, exam: Exam, patient: Mapping[str, Any] | None, *,
                     assessment: Mapping[str, Any], clinician: str | None,
                     now: dt.datetime, revision: int | None = None,
                     reason: str | None = None, signed_at: dt.datetime | None = None,
                     time_zone: str = "UTC",
                     impression: Impression = impression_mod.NONE,
                     proms: Sequence[Any] = ()) -> Document:
    """The clinician summary of ``exam``, as every surface makes it (tablet, CLI, the
    record for the EHR): assessed by the engine, dated by the exam, marked as a draft
    unless the response is completed or amended; with the revision, the amendment's
    reason, the signer and the signing time when the caller knows them; ``proms`` the
    visit's outcome measures as shown (``core.prom_results``)."""
    visit = visit_of(exam, patient, clinician, now, revision=revision, reason=reason,
                     signed_at=signed_at, time_zone=time_zone)
    pdf = summary_pdf(kb, exam, assessment, visit, impression=impression, proms=proms)
    return Document("summary", summary_heading(exam.form), pdf)


def visit_of(exam: Exam, patient: Mapping[str, Any] | None, clinician: str | None,
             now: dt.datetime, *, revision: int | None = None, reason: str | None = None,
             signed_at: dt.datetime | None = None, time_zone: str = "UTC") -> Visit:
    """The summary's who and when for ``exam``: dated by the exam in the clinic's zone,
    marked as a draft unless the response is completed or amended, with the revision,
    the amendment's reason and the signing time when the caller knows them."""
    status = exam.context.status
    return Visit(patient=patient or {}, clinician=clinician,
                 exam_date=exam_date(exam.context.authored, now, time_zone),
                 identifier=exam.exam_id, signed=status in responses.FINISHED,
                 revision=revision, amended=status == "amended", reason=reason,
                 signed_at=signed_at, time_zone=time_zone)


def pdf_from_html(template: str, html: str) -> bytes:
    """The PDF of a document's HTML made earlier by ``summary_html`` (``template``
    "summary") or ``handout_html`` ("handout"): a signed revision's documents are
    rendered from the HTML frozen at its signature (laid out again like any other, so
    the last page is never near-empty). The summary's title is its HTML ``<title>``
    (``summary_heading``: a follow-up's names the follow-up)."""
    return pdf.render(html, title=None if template == "summary" else HANDOUT_TITLE,
                      stylesheets=STYLESHEETS[template], refits=REFITS[template],
                      min_last_page=MIN_LAST_PAGE)


def exam_date(authored: str | None, fallback: dt.datetime, time_zone: str = "UTC") -> str:
    """The exam's date in the clinic's zone: of ``authored`` (the exam's own time, a
    full date-time converted, a bare date as it is), else of ``fallback``."""
    if authored and "T" in authored:
        try:
            return datetimes.local_date(datetimes.parse_aware(authored), time_zone)
        except ValueError:
            return authored[:10]
    if authored:
        return authored[:10]
    return datetimes.local_date(fallback, time_zone)


#: The row that groups a section's normal, negative and "no" answers.
UNREMARKABLE_LABEL = "Normal, negative or no"
#: Dropped from a question's text where it reads as a label ("Imaging so far").
ALL_THAT_APPLY = " (all that apply)"


def _narrative(rows: list[layout.Row]) -> list[Phrase]:
    """A section without left and right as one run of text, as a clinical letter reads:
    ``Label: value; Label: value.`` then ``Normal, negative or no: label; label.`` One
    paragraph instead of a table: each table cell is a box WeasyPrint lays out, styles
    and tags, and those cells were most of the summary's render time."""
    def label(text: str) -> str:
        return text[:-len(ALL_THAT_APPLY)] if text.endswith(ALL_THAT_APPLY) else text

    def phrase(row: layout.Row) -> str:
        if row.whole:
            return row.label
        name = label(row.label)
        return f"{name} {row.value}" if name.endswith("?") else f"{name}: {row.value}"

    shown, plain = _grouped(rows)
    parts = []
    for n, row in enumerate(shown):
        text = phrase(row)
        end = "; " if n + 1 < len(shown) else ("" if text.endswith(".") else ".")
        parts.append(Phrase(text, row.marked("value"), end))
    if plain:
        grouped = f"{UNREMARKABLE_LABEL}: " + "; ".join(label(r.label) for r in plain)
        parts.append(Phrase(grouped, False, "" if grouped.endswith(".") else "."))
    if len(parts) > 1 and shown:
        parts[len(shown) - 1] = replace(parts[len(shown) - 1],
                                        end=parts[len(shown) - 1].end + " ")
    return parts


@dataclass(frozen=True)
class Phrase:
    """A piece of a narrative section: its text, whether it is an abnormal or positive
    finding (printed bold with the marker) and what follows it ("; ", ".")."""

    text: str
    abnormal: bool
    end: str


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
