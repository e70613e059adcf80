"""The DocumentReference carrying the clinician summary validates under fhir.resources
AND the independent validator with zero errors, alone and inside its extraction Bundle,
for every golden case: the case's answers as a completed response authored and signed as
the case says, with the case's Patient as the subject, and a small real PDF (fixed bytes,
not the summary renderer, which is tested on its own)."""
from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from plugin import __version__
from plugin.core import responses
from plugin.record import pipeline
from plugin.core.datetimes import parse_aware
from plugin.core.documents import Document
from tests.core.test_documents import MINIMAL_PDF
from tests.support.bundles import by_url, of_type
from tests.support.conformance import assert_conformant

CASES = sorted((Path(__file__).resolve().parent.parent / "data" / "cases").glob("*.json"))
RECORDED = dt.datetime(2026, 11, 21, 23, 0, tzinfo=dt.timezone.utc)
SUMMARY = Document("summary", "Posterior thigh exam: clinician summary", MINIMAL_PDF)


def _exam(kb: Any, case: dict[str, Any]) -> Any:
    """As test_assess_emitted builds its request: the case's answers as a completed QR
    (the product's own plain -> QR path) signed by the case's author, read back with the
    case's Patient as the subject."""
    exam = pipeline.exam_from_input(kb, case["answers"], now=parse_aware(case["authored"]))
    qr = dict(responses.build(exam), author=case["author"])
    return pipeline.exam_from_input(kb, qr, patient=case["patient"],
                                    now=parse_aware(case["authored"]))


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_the_summary_document_of_every_golden_case(kb, validator, case: Path) -> None:
    data = json.loads(case.read_text(encoding="utf-8"))
    exam = _exam(kb, data)
    assert exam.context.subject and exam.context.author
    result = pipeline.record(kb, exam, plugin_version=__version__, recorded=RECORDED,
                             documents=[SUMMARY])
    assert_conformant(validator, result)
    [reference] = of_type(result, "DocumentReference")
    assert_conformant(validator, reference)

    assert reference["subject"] == exam.context.subject
    assert reference["author"] == [data["author"]]
    assert reference["docStatus"] == "final"
    assert reference["context"]["period"] == {"start": data["authored"]}
    attachment = reference["content"][0]["attachment"]
    assert base64.b64decode(attachment["data"]) == MINIMAL_PDF
    [related] = reference["context"]["related"]
    assert by_url(result)[related["reference"]]["resourceType"] == "QuestionnaireResponse"
    [provenance] = of_type(result, "Provenance")
    url = next(e["fullUrl"] for e in result["entry"] if e["resource"] is reference)
    assert {"reference": url, "type": "DocumentReference"} in provenance["target"]


def test_a_document_without_subject_or_context_is_conformant(kb, validator) -> None:
    """R4 allows a DocumentReference without subject; the bare one must still validate."""
    data = json.loads(CASES[0].read_text(encoding="utf-8"))
    exam = pipeline.exam_from_input(kb, data["answers"], now=RECORDED)
    result = pipeline.record(kb, exam, plugin_version=__version__, recorded=RECORDED,
                             documents=[SUMMARY])
    assert_conformant(validator, result)
    [reference] = of_type(result, "DocumentReference")
    assert "subject" not in reference
    assert_conformant(validator, reference)
