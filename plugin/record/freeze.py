"""Freezing a signed revision: what every later view, print and delivery is made from.

A medical record shows what was signed. At each signature (``exams.sign``), in the
signature's own transaction, the revision's ``Frozen`` inputs are stored: the
assessment exactly as the review showed it (its JSON contract, with
``knowledge_version``), its numbered sources, and the HTML of each document (the
clinician summary, the patient handout and its large print, the handout's words taken
from the knowledge of that moment). The record page, revision views and PDFs read them;
nothing signed is recomputed, whatever the knowledge or the clock says later.

The PDFs are rendered once from that HTML, after the signature and outside the request
(``render_pending``: the renderer process ``serve`` runs, ``python -m plugin documents
--pending`` or the delivery worker), stored per revision (``adapters.frozen``) and
served and delivered byte for byte.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..adapters import frozen as frozen_store
from ..adapters.documents import render as documents
from ..adapters.store import Store
from ..core import documents as document_refs, prom_results
from ..core.responses import Exam
from ..decision import impression as impression_mod, sources as sources_mod
from ..decision.impression import Impression

log = logging.getLogger(__name__)

PDF = "application/pdf"
#: The documents of a signed revision: kind -> (template, large print). The kind is
#: stored with the bytes and, for ``summary``, names the DocumentReference delivered.
KINDS: Mapping[str, tuple[str, bool]] = {"summary": ("summary", False),
                                         "handout": ("handout", False),
                                         "handout-large": ("handout", True)}
#: A failed render is tried again after this long (s).
RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class Frozen:
    """What a signed revision's views and documents are made from, fixed at signature.

    One place: a new input (say the clinician's impression and plan) is a field here,
    filled in ``freeze``, and its documents' HTML is made with it."""

    #: the decision knowledge the assessment was made with
    knowledge_version: str
    #: the assessment exactly as the review showed it (``Assessment.as_json()``)
    assessment: Mapping[str, Any]
    #: the numbered sources it cites: [[n, text], ...] and citation id -> n
    sources: tuple[tuple[int, str], ...]
    numbers: Mapping[str, int]
    #: each document's HTML (``KINDS``), rendered to PDF once after the signature
    html: Mapping[str, str]
    #: the visit's completed outcome measures as signed: the scored responses and their
    #: meaning as shown (``core.prom_results.as_json``: scores, bands, change, MCID and
    #: its source, copyright). Revisions frozen before PROMs were kept have none.
    prom_responses: tuple[Mapping[str, Any], ...] = ()
    prom_results: tuple[Mapping[str, Any], ...] = ()
    #: a follow-up's comparison with its episode as signed (``record.visits.episode_view``:
    #: "Since last visit", the return-to-sport checklist); None for an initial exam
    episode: Mapping[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """The stored form (``frozen_inputs.inputs``)."""
        return {k: [list(s) for s in v] if k == "sources" else
                list(v) if k in ("prom_responses", "prom_results") else v
                for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Frozen:
        return cls(knowledge_version=data["knowledge_version"], assessment=data["assessment"],
                   sources=tuple((int(n), str(text)) for n, text in data["sources"]),
                   numbers=dict(data["numbers"]), html=dict(data["html"]),
                   prom_responses=tuple(data.get("prom_responses") or ()),
                   prom_results=tuple(data.get("prom_results") or ()),
                   episode=data.get("episode"))

    def numbered(self) -> sources_mod.Sources:
        """The sources as the pages print them (``decision.sources``)."""
        return sources_mod.Sources(self.sources, self.numbers)

    def proms(self) -> list[prom_results.PromResult]:
        """The outcome measures as the pages print them."""
        return prom_results.from_json(self.prom_results)


def freeze(kb: Any, exam: Exam, *, assessment: Mapping[str, Any],
           patient: Mapping[str, Any] | None, clinician: str | None,
           now: dt.datetime, revision: int | None = None, reason: str | None = None,
           time_zone: str = "UTC", clinic_contact: str = "",
           impression: Impression = impression_mod.NONE,
           episode: Mapping[str, Any] | None = None, progress: Any = None,
           proms: Sequence[Mapping[str, Any]] = (),
           prom_lines: Sequence[prom_results.PromResult] = ()) -> Frozen:
    """The frozen inputs of a signed ``exam`` assessed as ``assessment`` (its JSON):
    the documents say the revision, the amendment's reason, the signer and the signing
    time (``now``) in the clinic's ``time_zone``, the clinician's ``impression`` and
    plan, the visit's scored outcome measures (``proms``) and their meaning as shown
    (``prom_lines``), and the handout the patient's name, date, side and
    ``clinic_contact``; a follow-up's ``episode`` view (``record.visits.episode_view``)
    adds "Since last visit" to the summary and "What has improved" to the handout; the
    summary charts ``progress`` (``record.progress``: the visits up to this one)."""
    numbered = sources_mod.numbered(assessment, kb.decision.citations)
    visit = documents.visit_of(exam, patient, clinician, now, revision=revision,
                               reason=reason, signed_at=now, time_zone=time_zone)
    header = documents.handout_header(exam, patient, now=now, time_zone=time_zone,
                                      clinic_contact=clinic_contact)
    html = {"summary": documents.summary_html(kb, exam, assessment, visit,
                                              impression=impression, episode=episode,
                                              progress=progress, proms=prom_lines)}
    for kind, (template, large) in KINDS.items():
        if template == "handout":
            html[kind] = documents.handout_html(kb, assessment, large_print=large,
                                                header=header, impression=impression,
                                                episode=episode)
    return Frozen(knowledge_version=str(assessment["knowledge_version"]),
                  assessment=assessment, sources=numbered.listed,
                  numbers=dict(numbered.numbers), html=html,
                  prom_responses=tuple(dict(p) for p in proms),
                  prom_results=tuple(prom_results.as_json(prom_lines)),
                  episode=episode)


def read(store: Store, exam_id: str, revision: int) -> tuple[Frozen, bool] | None:
    """A revision's frozen inputs and whether its documents exist yet; None for a
    revision signed before freezing existed (its pages are made as they were then)."""
    row = frozen_store.read(store, exam_id, revision)
    if row is None:
        return None
    return Frozen.from_json(row.inputs), row.rendered_at is not None


def render_pending(store: Store, *, worker_id: str, lease_seconds: float,
                   limit: int | None = None) -> int:
    """Render the documents of revisions that wait for them, oldest first, until none
    is left (or ``limit`` were rendered); how many were rendered. A render that fails
    is tried again later (``RETRY_SECONDS``); one whose renderer died is taken again
    once its lease ran out."""
    done = 0
    while limit is None or done < limit:
        job = frozen_store.claim(store, worker_id, lease_seconds)
        if job is None:
            break
        inputs = Frozen.from_json(job.inputs)
        try:
            rendered = {kind: (PDF, documents.pdf_from_html(template, inputs.html[kind]))
                        for kind, (template, _) in KINDS.items()}
        except Exception as error:  # noqa: BLE001 - kept, retried; never PHI in the log
            log.warning("rendering the documents of a signed revision failed: %s",
                        type(error).__name__)
            frozen_store.failed(store, job, type(error).__name__, RETRY_SECONDS)
            continue
        summary = rendered["summary"][1]

        def fill(payload: Mapping[str, Any]) -> Mapping[str, Any]:
            return document_refs.with_content(payload, f"{job.exam_id}/summary", summary)
        if frozen_store.finish(store, job, rendered, fill):
            done += 1
    return done
