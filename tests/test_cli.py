"""The command line as a user runs it: exit codes and messages, never a traceback."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATIENT = {"resourceType": "Patient", "id": "p-42", "birthDate": "1986-03-14",
           "name": [{"given": ["Ana"], "family": "Silva"}]}


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "plugin", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=60)


def write(tmp_path: Path, name: str, data: object) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def test_extract_prints_the_bundle(tmp_path: Path) -> None:
    answers = write(tmp_path, "a.json", {"slr.left.onset-angle": 40, "history.onset": "gradual"})
    result = run("extract", answers, "--authored", "2026-11-21T10:00:00+01:00")
    assert result.returncode == 0, result.stderr
    bundle = json.loads(result.stdout)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    qr = bundle["entry"][0]["resource"]
    assert qr["authored"] == "2026-11-21T10:00:00+01:00"


def test_extract_with_patient_sets_subject_and_age(tmp_path: Path) -> None:
    answers = write(tmp_path, "a.json", {"pain.current": 4})
    patient = write(tmp_path, "p.json", PATIENT)
    result = run("extract", answers, "--patient", patient, "--authored", "2026-11-21T10:00:00Z")
    assert result.returncode == 0, result.stderr
    resources = [e["resource"] for e in json.loads(result.stdout)["entry"]]
    qr = resources[0]
    assert qr["subject"]["reference"] == "Patient/p-42"
    age = next(i for i in qr["item"] if i["linkId"] == "patient")["item"][0]
    assert age == {"linkId": "patient.age-years", "text": "Age (years)",
                   "answer": [{"valueInteger": 40}]}
    assert all(r["subject"]["reference"] == "Patient/p-42"
               for r in resources if r["resourceType"] == "Observation")


def test_reads_answers_from_stdin() -> None:
    result = run("extract", "-", stdin=json.dumps({"red-flags.fever": False}))
    assert result.returncode == 0, result.stderr


def test_invalid_answers_list_every_linkid(tmp_path: Path) -> None:
    answers = write(tmp_path, "a.json", {"slr.left.onset-angle": 120, "pain.current": "4",
                                         "made.up": True})
    result = run("extract", answers)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for line in ("slr.left.onset-angle: 120 is out of range", "pain.current: Expected a whole",
                 "made.up: Unknown linkId"):
        assert line in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(("files", "extra", "message"), [
    ({}, ("missing.json",), "cannot read missing.json"),
    ({"a.json": "{not json"}, ("a.json",), "is not valid JSON (line 1"),
    ({"a.json": "{}"}, ("a.json", "--authored", "yesterday"), "is not an ISO 8601"),
    ({"a.json": "{}"}, ("a.json", "--authored", "2026-11-21T10:00:00"), "needs a timezone"),
])
def test_unusable_input_exits_2(tmp_path: Path, files, extra, message) -> None:
    for name, text in files.items():
        write(tmp_path, name, text)
    args = [str(tmp_path / a) if a.endswith(".json") else a for a in extra]
    result = run("extract", *args)
    assert result.returncode == 2
    assert message.replace("missing.json", str(tmp_path / "missing.json")) in result.stderr
    assert "Traceback" not in result.stderr


def test_patient_that_is_not_a_patient_is_refused(tmp_path: Path) -> None:
    answers = write(tmp_path, "a.json", {})
    patient = write(tmp_path, "p.json", {"resourceType": "Practitioner"})
    result = run("extract", answers, "--patient", patient)
    assert result.returncode == 1
    assert "Expected a FHIR Patient" in result.stderr


def test_age_contradicting_birth_date_is_refused(tmp_path: Path) -> None:
    answers = write(tmp_path, "a.json", {"patient.age-years": 25})
    patient = write(tmp_path, "p.json", PATIENT)
    result = run("extract", answers, "--patient", patient, "--authored", "2026-11-21T10:00:00Z")
    assert result.returncode == 1
    assert "patient.age-years: 25 does not match the Patient's birthDate 1986-03-14" in result.stderr
