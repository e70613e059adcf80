"""``python -m plugin pdf`` and ``extract --with-summary`` as a user runs them."""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from tests.support import pdfs
from tests.support.conformance import IndependentValidator, assert_conformant
from tests.support.cli import run, write

CASE = json.loads((Path(__file__).resolve().parent / "data" / "cases" /
                   "disc-radiculopathy-2-weeks-severe.json").read_text())


@pytest.fixture()
def inputs(tmp_path: Path) -> tuple[str, str]:
    return write(tmp_path, "answers.json", CASE["answers"]), write(tmp_path, "patient.json",
                                                                   CASE["patient"])


def test_pdf_summary_and_handout(tmp_path: Path, inputs) -> None:
    answers, patient = inputs
    out = tmp_path / "summary.pdf"
    result = run("pdf", answers, "--patient", patient, "--clinician", "Dr Lee", "-o", str(out))
    assert result.returncode == 0, result.stderr
    text = pdfs.text_of(out.read_bytes())
    assert "Dr Lee" in text and CASE["patient"]["name"][0]["family"] in text
    handout = tmp_path / "handout.pdf"
    large = tmp_path / "large.pdf"
    assert run("pdf", answers, "--kind", "handout", "-o", str(handout)).returncode == 0
    assert run("pdf", answers, "--kind", "handout", "--large-print", "-o", str(large)
               ).returncode == 0
    assert "Go to A&E now" in pdfs.text_of(handout.read_bytes())  # a nerve-related handout
    assert pdfs.page_count(large.read_bytes()) > pdfs.page_count(handout.read_bytes())


@pytest.mark.parametrize("args, code, message", [
    (["--kind", "letter"], 2, "invalid choice"),
    (["-o", "/nonexistent-dir/x.pdf"], 2, "cannot write /nonexistent-dir/x.pdf"),
])
def test_pdf_refuses_bad_arguments(inputs, args, code, message) -> None:
    answers, _ = inputs
    result = run("pdf", answers, *(args if "-o" in args else [*args, "-o", "x.pdf"]))
    assert result.returncode == code and message in result.stderr
    assert "Traceback" not in result.stderr


def test_pdf_of_invalid_answers_exits_1(tmp_path: Path) -> None:
    answers = write(tmp_path, "bad.json", {"slr.left.onset-angle": 400})
    result = run("pdf", answers, "-o", str(tmp_path / "x.pdf"))
    assert result.returncode == 1 and "slr.left.onset-angle" in result.stderr
    assert not (tmp_path / "x.pdf").exists()


def test_extract_with_summary_carries_a_conformant_document_reference(inputs) -> None:
    answers, patient = inputs
    result = run("extract", answers, "--patient", patient, "--with-summary",
                 "--clinician", "Dr Lee", "--authored", CASE["authored"])
    assert result.returncode == 0, result.stderr
    bundle = json.loads(result.stdout)
    documents = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    assert len(documents) == 1
    document = documents[0]["resource"]
    attachment = document["content"][0]["attachment"]
    pdf = base64.b64decode(attachment["data"])
    assert attachment["size"] == len(pdf)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(pdf).digest()).decode()
    assert "Dr Lee" in pdfs.text_of(pdf)
    assert document["type"]["coding"][0] == {"system": "http://loinc.org", "code": "11488-4",
                                             "display": "Consult note"}
    with IndependentValidator() as validator:
        assert_conformant(validator, document)
        assert_conformant(validator, bundle)
