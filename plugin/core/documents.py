"""Documents about an exam (the clinician summary PDF) as FHIR R4 DocumentReferences.

The PDF is rendered elsewhere; this module only receives its bytes and describes them
the way US Core "Writing Clinical Notes" asks a client to: an inline base64 attachment
(``application/pdf``), a LOINC note type, category ``clinical-note``, the subject, the
encounter and the period of care in ``context``, plus an identifier the plugin owns so a
re-sent Bundle never files the same note twice.

Pure: no rendering, no I/O.
"""
from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import terminology as t
from .datetimes import is_instant
from .responses import Exam

#: The note type. US Core "Writing Clinical Notes" lists LOINC 11488-4 (Consult note)
#: among the note types a client sends, and the summary is the record of a specialist
#: consultation (the posterior thigh exam with its assessment and referral advice),
#: not a progress note (11506-3) in an ongoing course of care.
CONSULT_NOTE = {"system": t.LOINC, "code": "11488-4", "display": "Consult note"}
#: US Core's DocumentReference category for notes a clinician writes.
CLINICAL_NOTE = {"system": t.DOCUMENT_CATEGORY, "code": "clinical-note",
                 "display": "Clinical Note"}
PDF = "application/pdf"
#: A document is final once the exam it summarises is signed (completed or amended);
#: anything else is still a draft of the record.
FINAL_FOR = ("completed", "amended")

_KIND = re.compile(r"[a-z][a-z0-9-]*\Z")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*\Z")  # BCP 47, as FHIR codes it


@dataclass(frozen=True)
class Document:
    """A rendered document about an exam.

    ``kind`` names what it is ("summary": the clinician summary) and is part of the
    DocumentReference's identifier, so it must never change for a kind once delivered;
    other kinds (a patient handout, say) get their own.
    """

    kind: str
    title: str
    pdf: bytes
    language: str = "en-GB"

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not _KIND.match(self.kind):
            raise ValueError(f"Document kind {self.kind!r} must be lower-case letters, digits "
                             "and hyphens: it becomes part of an identifier.")
        if not isinstance(self.title, str) or not self.title.strip() \
                or self.title != self.title.strip():
            raise ValueError(f"Document title {self.title!r} must be non-blank text without "
                             "leading or trailing spaces.")
        if not isinstance(self.pdf, bytes) or not self.pdf.startswith(b"%PDF-"):
            raise ValueError("Document pdf must be the bytes of a PDF (starting with %PDF-).")
        if not isinstance(self.language, str) or not _LANGUAGE.match(self.language):
            raise ValueError(f"Document language {self.language!r} is not a BCP 47 tag.")


def identifier(exam: Exam, document: Document) -> dict[str, str]:
    """The plugin-owned identifier: one per exam and kind, whatever the bytes."""
    return {"system": t.ID_DOCUMENT_REFERENCE, "value": f"{exam.exam_id}/{document.kind}"}


def document_reference(exam: Exam, document: Document, *, created: str,
                       related: Mapping[str, Any] | None) -> dict[str, Any]:
    """An R4 DocumentReference carrying ``document`` inline.

    ``created`` (an instant) is when the reference was made: ``date`` and the
    attachment's ``creation``. ``related`` is a Reference to what the document was made
    from (in the extraction Bundle, the QuestionnaireResponse); it goes in
    ``context.related``. ``subject``, ``author`` and ``context.encounter`` come from the
    exam when it has them; ``context.period.start`` is ``authored`` when that is a full
    date-time.
    """
    if not is_instant(created):
        raise ValueError(f"created {created!r} must be a full date-time with a timezone")
    ctx = exam.context
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "identifier": [identifier(exam, document)],
        "status": "current",
        "docStatus": "final" if ctx.status in FINAL_FOR else "preliminary",
        "type": {"coding": [dict(CONSULT_NOTE)]},
        "category": [{"coding": [dict(CLINICAL_NOTE)]}],
    }
    if ctx.subject:
        resource["subject"] = dict(ctx.subject)
    resource["date"] = created
    if ctx.author:
        resource["author"] = [dict(ctx.author)]
    resource["description"] = document.title
    resource["content"] = [{"attachment": _attachment(document, created)}]
    context: dict[str, Any] = {}
    if ctx.encounter:
        context["encounter"] = [dict(ctx.encounter)]
    if ctx.authored and is_instant(ctx.authored):
        context["period"] = {"start": ctx.authored}
    if related:
        context["related"] = [dict(related)]
    if context:  # FHIR JSON has no empty objects
        resource["context"] = context
    return resource


def _attachment(document: Document, created: str) -> dict[str, Any]:
    return {"contentType": PDF, "language": document.language, **content(document.pdf),
            "title": document.title, "creation": created}


def content(pdf: bytes) -> dict[str, Any]:
    """An Attachment's ``data``, ``size`` and ``hash`` for ``pdf``. R4 Attachment.hash is
    the base64 of the SHA-1 digest of the data (not of its base64 text); size is the
    number of bytes before base64."""
    digest = hashlib.sha1(pdf, usedforsecurity=False).digest()
    return {"data": base64.b64encode(pdf).decode("ascii"), "size": len(pdf),
            "hash": base64.b64encode(digest).decode("ascii")}


def with_content(bundle: Mapping[str, Any], identifier_value: str,
                 pdf: bytes) -> dict[str, Any]:
    """``bundle`` (a transaction) with the DocumentReference identified by
    ``identifier_value`` (``<exam>/<kind>``) carrying ``pdf``: a signed record's
    DocumentReference is made at the signature, its bytes once they are rendered."""
    entries = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "DocumentReference" and any(
                i.get("system") == t.ID_DOCUMENT_REFERENCE and i.get("value") == identifier_value
                for i in resource.get("identifier") or []):
            resource = {**resource, "content": [
                {**c, "attachment": {**c["attachment"], **content(pdf)}}
                for c in resource["content"]]}
            entry = {**entry, "resource": resource}
        entries.append(entry)
    return {**bundle, "entry": entries}
