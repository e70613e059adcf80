"""The command line as a user runs it: exit codes and messages, never a traceback."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugin.__main__ import main
from plugin.config import DEFAULTS
from tests.support.cli import run, write

PATIENT = {"resourceType": "Patient", "id": "p-42", "birthDate": "1986-03-14",
           "name": [{"given": ["Ana"], "family": "Silva"}]}


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
    assert ("patient.age-years: 25 does not match the Patient's birthDate 1986-03-14"
            in result.stderr)


def test_in_progress_response_is_refused(tmp_path: Path) -> None:
    qr = {"resourceType": "QuestionnaireResponse", "status": "in-progress", "questionnaire":
          "http://posterior-thigh-exam.org/fhir/Questionnaire/posterior-thigh-exam"}
    result = run("extract", write(tmp_path, "qr.json", qr))
    assert result.returncode == 1
    assert "must be completed or amended" in result.stderr


def test_every_problem_of_an_invalid_patient_is_listed(tmp_path: Path) -> None:
    answers = write(tmp_path, "a.json", {})
    patient = write(tmp_path, "p.json", {"resourceType": "Patient", "birthDate": "14/03/1986",
                                         "active": "maybe"})
    result = run("extract", answers, "--patient", patient)
    assert result.returncode == 1
    assert "The Patient is not valid FHIR R4." in result.stderr
    assert "Patient.birthDate:" in result.stderr and "Patient.active:" in result.stderr


def test_nothing_to_extract_still_prints_the_bundle_with_a_warning(tmp_path: Path) -> None:
    result = run("extract", write(tmp_path, "a.json", {}))
    assert result.returncode == 0, result.stderr
    assert "warning: Nothing to extract: no answer in this response maps to an Observation" in result.stderr
    assert json.loads(result.stdout)["type"] == "transaction"


def test_output_is_utf8_whatever_the_terminal_encoding(tmp_path: Path) -> None:
    answers = write(tmp_path, "a.json", {"slr.left.onset-angle": 40})
    result = run("extract", answers, env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr
    assert '"unit": "°"' in result.stdout


def test_absurdly_nested_json_is_refused_not_crashed_on(tmp_path: Path) -> None:
    answers = write(tmp_path, "a.json", "[" * 5000 + "]" * 5000)
    result = run("extract", answers)
    assert result.returncode == 2
    assert "nests JSON deeper than 64 levels" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("argv", "code"), [
    (["--help"], 0), (["extract", "--help"], 0), ([], 2), (["bogus"], 2), (["extract"], 2),
    (["serve", "--port", "70000"], 2), (["serve", "--workers", "0"], 2),
])
def test_main_returns_the_exit_code(argv: list[str], code: int, capsys) -> None:
    """main() is the console script: it returns the code, usage errors included."""
    assert main(argv) == code
    if code:
        assert "usage:" in capsys.readouterr().err


def _broken_questionnaires(tmp_path: Path) -> Path:
    folder = tmp_path / "questionnaires"
    folder.mkdir()
    (folder / "exam.json").write_text('{"resourceType": "Questionnaire",', encoding="utf-8")
    return folder


def test_broken_data_files_stop_extract_with_exit_3(tmp_path: Path, monkeypatch,
                                                    capsys) -> None:
    monkeypatch.setitem(DEFAULTS, "QUESTIONNAIRES_DIR", str(_broken_questionnaires(tmp_path)))
    assert main(["extract", write(tmp_path, "a.json", {})]) == 3
    err = capsys.readouterr().err
    assert "broken data file" in err and "exam.json" in err and "invalid JSON" in err


def test_broken_data_files_stop_serve_before_it_binds(tmp_path: Path) -> None:
    folder = _broken_questionnaires(tmp_path)
    result = run("serve", "--port", "1", env={"PLUGIN_QUESTIONNAIRES_DIR": str(folder)})
    assert result.returncode == 3
    assert "cannot start, broken data file" in result.stderr and "exam.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_extract_reads_the_same_configuration_as_the_service(tmp_path: Path) -> None:
    folder = _broken_questionnaires(tmp_path)
    result = run("extract", write(tmp_path, "a.json", {}),
                 env={"PLUGIN_QUESTIONNAIRES_DIR": str(folder)})
    assert result.returncode == 3
    assert "broken data file" in result.stderr and "exam.json" in result.stderr


@pytest.mark.parametrize("command", [["deliver", "--list"], ["audit", "export"],
                                     ["verify", "--exam", "e-1"], ["users", "list"]])
def test_an_unusable_signing_key_is_one_line_and_exit_4(tmp_path, command) -> None:
    """Every command that opens the service's configuration says why it cannot, never
    with a traceback (the key is loaded at start-up)."""
    result = run(*command, env={"PLUGIN_SIGNING_KEY": "not a PEM key",
                                "PLUGIN_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "SIGNING_KEY holds no usable private key" in result.stderr
