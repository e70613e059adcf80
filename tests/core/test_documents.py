"""The clinician summary PDF as a DocumentReference, and its place in the extraction
Bundle: identified by exam and kind, the bytes carried exactly (size, SHA-1, base64),
final only for a signed exam, context only when the exam has it, conditionally created
and covered by the Provenance."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pypdf
import pytest

from plugin.core import bundle
from plugin.record import pipeline
from plugin.core.documents import Document, document_reference
from tests.support.bundles import by_url, of_type

CASE = Path(__file__).resolve().parents[1] / "data" / "cases" / "normal-exam.json"
NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.timezone.utc)
CREATED = "2026-11-21T12:30:00+00:00"
DOCUMENT_ID = "http://posterior-thigh-exam.org/fhir/id/document-reference"
TITLE = "Posterior thigh exam: clinician summary"
ENCOUNTER = {"reference": "Encounter/enc-1", "type": "Encounter"}
QR = {"reference": "urn:uuid:00000000-0000-5000-8000-000000000000",
      "type": "QuestionnaireResponse"}

#: A minimal valid PDF (one blank 1-inch page), made once with
#: ``pypdf.PdfWriter(); add_blank_page(width=72, height=72); write(BytesIO)`` and fixed
#: here so the tests never depend on the summary renderer.
MINIMAL_PDF = (
    b"%PDF-1.3\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<\n/Producer (pypdf)\n>>\nendobj\n"
    b"2 0 obj\n<<\n/Type /Pages\n/Count 1\n/Kids [ 4 0 R ]\n>>\nendobj\n"
    b"3 0 obj\n<<\n/Type /Catalog\n/Pages 2 0 R\n>>\nendobj\n"
    b"4 0 obj\n<<\n/Type /Page\n/Resources <<\n>>\n/MediaBox [ 0.0 0.0 72 72 ]\n"
    b"/Parent 2 0 R\n>>\nendobj\n"
    b"xref\n0 5\n0000000000 65535 f \n0000000015 00000 n \n0000000054 00000 n \n"
    b"0000000113 00000 n \n0000000162 00000 n \n"
    b"trailer\n<<\n/Size 5\n/Root 3 0 R\n/Info 1 0 R\n>>\nstartxref\n254\n%%EOF\n")
SUMMARY = Document("summary", TITLE, MINIMAL_PDF)


def _case() -> dict[str, Any]:
    return json.loads(CASE.read_text(encoding="utf-8"))


def _full_exam(kb):
    """The case with everything: its Patient as subject, an author, an encounter."""
    case = _case()
    exam = pipeline.exam_from_input(kb, case["answers"], patient=case["patient"],
                                    now=dt.datetime.fromisoformat(case["authored"]))
    return replace(exam, context=replace(exam.context, author=case["author"],
                                         encounter=ENCOUNTER))


def _bare_exam(kb):
    """Plain answers alone: no subject, author or encounter."""
    return pipeline.exam_from_input(kb, _case()["answers"], now=NOW)


def _record(kb, exam, documents=(SUMMARY,)) -> dict[str, Any]:
    return pipeline.record(kb, exam, plugin_version="test", recorded=NOW, documents=documents)


def test_the_fixed_pdf_is_a_real_pdf() -> None:
    reader = pypdf.PdfReader(io.BytesIO(MINIMAL_PDF))
    assert len(reader.pages) == 1


def test_the_attachment_carries_the_bytes_exactly(kb) -> None:
    reference = document_reference(_full_exam(kb), SUMMARY, created=CREATED, related=QR)
    [content] = reference["content"]
    attachment = content["attachment"]
    assert base64.b64decode(attachment["data"], validate=True) == MINIMAL_PDF
    assert attachment["size"] == len(MINIMAL_PDF) and isinstance(attachment["size"], int)
    assert base64.b64decode(attachment["hash"]) == hashlib.sha1(MINIMAL_PDF).digest()
    assert attachment["contentType"] == "application/pdf"
    assert attachment["language"] == "en-GB"
    assert attachment["title"] == TITLE and attachment["creation"] == CREATED


def test_the_note_is_coded_as_us_core_asks(kb) -> None:
    reference = document_reference(_full_exam(kb), SUMMARY, created=CREATED, related=QR)
    assert reference["resourceType"] == "DocumentReference"
    assert reference["status"] == "current"
    assert reference["type"]["coding"] == [
        {"system": "http://loinc.org", "code": "11488-4", "display": "Consult note"}]
    assert reference["category"] == [{"coding": [{
        "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
        "code": "clinical-note", "display": "Clinical Note"}]}]
    assert reference["date"] == CREATED
    assert reference["description"]


def test_the_identifier_is_stable_per_exam_and_kind(kb) -> None:
    exam = _full_exam(kb)
    first = document_reference(exam, SUMMARY, created=CREATED, related=QR)
    again = document_reference(_full_exam(kb), Document("summary", "Another title",
                                                        MINIMAL_PDF + b"\n"),
                               created="2027-01-01T00:00:00Z", related=None)
    assert first["identifier"] == again["identifier"] == [
        {"system": DOCUMENT_ID, "value": f"{exam.exam_id}/summary"}]
    handout = document_reference(exam, Document("handout", "Handout", MINIMAL_PDF),
                                 created=CREATED, related=QR)
    other_exam = document_reference(_bare_exam(kb), SUMMARY, created=CREATED, related=QR)
    assert len({json.dumps(r["identifier"]) for r in (first, handout, other_exam)}) == 3


@pytest.mark.parametrize(("status", "doc_status"), [
    ("completed", "final"), ("amended", "final"), ("in-progress", "preliminary"),
    ("stopped", "preliminary"), ("entered-in-error", "preliminary")])
def test_doc_status_follows_the_exam_status(kb, status, doc_status) -> None:
    exam = _full_exam(kb)
    exam = replace(exam, context=replace(exam.context, status=status))
    reference = document_reference(exam, SUMMARY, created=CREATED, related=QR)
    assert reference["docStatus"] == doc_status


def test_context_comes_from_the_exam_when_it_has_it(kb) -> None:
    exam = _full_exam(kb)
    case = _case()
    reference = document_reference(exam, SUMMARY, created=CREATED, related=QR)
    assert reference["subject"] == exam.context.subject
    assert reference["subject"]["reference"] == f"Patient/{case['patient']['id']}"
    assert reference["author"] == [case["author"]]
    assert reference["context"] == {"encounter": [ENCOUNTER],
                                    "period": {"start": case["authored"]},
                                    "related": [QR]}


def test_nothing_is_invented_when_the_exam_has_no_context(kb) -> None:
    exam = _bare_exam(kb)
    reference = document_reference(exam, SUMMARY, created=CREATED, related=None)
    assert not {"subject", "author"} & set(reference)
    # authored is a full date-time, so the period of care is still known
    assert reference["context"] == {"period": {"start": exam.context.authored}}
    undated = replace(exam, context=replace(exam.context, authored="2026-11-21"))
    assert "context" not in document_reference(undated, SUMMARY, created=CREATED,
                                               related=None)
    related_only = document_reference(undated, SUMMARY, created=CREATED, related=QR)
    assert related_only["context"] == {"related": [QR]}


def test_created_must_be_an_instant(kb) -> None:
    with pytest.raises(ValueError, match="timezone"):
        document_reference(_full_exam(kb), SUMMARY, created="2026-11-21T12:00:00",
                           related=QR)


@pytest.mark.parametrize("kwargs", [
    {"kind": ""}, {"kind": "Summary"}, {"kind": "summary/v2"}, {"title": " "},
    {"title": " padded"}, {"pdf": b""}, {"pdf": b"<html>"}, {"pdf": "%PDF-1.3"},
    {"language": "english"}])
def test_a_document_refuses_what_cannot_travel(kwargs) -> None:
    fields = {"kind": "summary", "title": TITLE, "pdf": MINIMAL_PDF, **kwargs}
    with pytest.raises(ValueError):
        Document(**fields)


def test_the_bundle_carries_the_document_conditionally(kb) -> None:
    exam = _full_exam(kb)
    result = _record(kb, exam)
    entries = result["entry"]
    kinds = [e["resource"]["resourceType"] for e in entries]
    assert kinds.count("DocumentReference") == 1
    at = kinds.index("DocumentReference")
    # after every assessment resource, right before the Device and the Provenance
    assert kinds[at + 1:] == ["Device", "Provenance"]
    entry = entries[at]
    reference = entry["resource"]
    identifier = reference["identifier"][0]
    assert identifier == {"system": DOCUMENT_ID, "value": f"{exam.exam_id}/summary"}
    assert entry["fullUrl"] == bundle.full_url(identifier)
    assert entry["fullUrl"].startswith("urn:uuid:")
    assert entry["request"] == {"method": "POST", "url": "DocumentReference",
                                "ifNoneExist": f"identifier={DOCUMENT_ID}|{exam.exam_id}/summary"}
    qr_url = entries[0]["fullUrl"]
    assert reference["context"]["related"] == [{"reference": qr_url,
                                                "type": "QuestionnaireResponse"}]
    assert reference["subject"] == exam.context.subject
    # authored is a full date-time: it dates the note, as it dates the Provenance
    [provenance] = of_type(result, "Provenance")
    assert reference["date"] == provenance["recorded"] == exam.context.authored
    assert {"reference": entry["fullUrl"], "type": "DocumentReference"} in provenance["target"]
    assert by_url(result)[qr_url]["resourceType"] == "QuestionnaireResponse"


def test_rerunning_gives_an_identical_bundle(kb) -> None:
    first = _record(kb, _full_exam(kb))
    second = _record(kb, _full_exam(kb))
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_without_documents_the_bundle_is_unchanged(kb) -> None:
    exam = _full_exam(kb)
    with_document = _record(kb, exam)
    without = _record(kb, exam, documents=())
    assert of_type(without, "DocumentReference") == []
    assert [e for e in with_document["entry"]
            if e["resource"]["resourceType"] not in ("DocumentReference", "Provenance")] \
        == [e for e in without["entry"] if e["resource"]["resourceType"] != "Provenance"]


def test_a_document_travels_without_a_subject(kb) -> None:
    exam = _bare_exam(kb)
    result = _record(kb, exam)
    [reference] = of_type(result, "DocumentReference")
    assert "subject" not in reference
    assert of_type(result, "Condition") == []  # the assessment still needs a subject
    [provenance] = of_type(result, "Provenance")
    assert "DocumentReference" in {t["type"] for t in provenance["target"]}


def test_the_extraction_time_dates_a_note_without_a_full_authored(kb) -> None:
    exam = _bare_exam(kb)
    exam = replace(exam, context=replace(exam.context, authored="2026-11-21"))
    [reference] = of_type(_record(kb, exam), "DocumentReference")
    assert reference["date"] == NOW.isoformat(timespec="seconds")
    assert "period" not in reference.get("context", {})


def test_one_document_per_kind(kb) -> None:
    with pytest.raises(ValueError, match="One document per kind"):
        _record(kb, _full_exam(kb), documents=(SUMMARY, replace(SUMMARY, title="Again")))
    two = _record(kb, _full_exam(kb),
                  documents=(SUMMARY, Document("handout", "Handout", MINIMAL_PDF)))
    assert len(of_type(two, "DocumentReference")) == 2
