"""``python -m plugin assess``: the decision support as a user runs it from the shell.

Exit codes and messages as for extract (0 ok, 1 invalid answers, 2 unusable input,
3 broken data files), the three output formats (the JSON contract, the clinician
summary, the FHIR collection Bundle), and the same output for the same input in any
process. Most runs call main() in-process, over an app built once by the same
create_app() the CLI calls (loading the knowledge is what makes a run slow); the broken
data test and a few real subprocess runs start from scratch, the latter because
determinism across interpreters (different hash seeds) is what they check.
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import plugin
from plugin.__main__ import main
from plugin.config import DEFAULTS
from tests.support.cli import run, write
from plugin.core import responses
from plugin.record import pipeline
from plugin.core.datetimes import parse_aware
from tests.support.bundles import by_url as _by_url, of_type as _of_type, references as _references

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "data" / "cases"
DECISION_SUPPORT = "http://posterior-thigh-exam.org/fhir/CodeSystem/decision-support"
CONTRACT_KEYS = ["urgency", "red_flags", "differential", "contributing_factors", "referrals",
                 "pt_focus", "caveats", "knowledge_version", "disclaimer"]


def _case(name: str) -> dict[str, Any]:
    return json.loads((CASES / f"{name}.json").read_text(encoding="utf-8"))


CES = _case("ces-unilateral-sciatica")  # left sciatica + new bladder hesitancy: emergency
_CREATE_APP = plugin.create_app


@pytest.fixture(scope="module")
def cli_app():
    """The app exactly as the CLI builds it (no test config: defaults, instance, PLUGIN_*)."""
    return _CREATE_APP()


@pytest.fixture(autouse=True)
def _knowledge_loaded_once(monkeypatch, cli_app) -> None:
    monkeypatch.setattr(plugin, "create_app", lambda test_config=None: cli_app
                        if test_config is None else _CREATE_APP(test_config))


def _case_args(tmp_path: Path, case: dict[str, Any], *, patient: bool = True) -> list[str]:
    args = [write(tmp_path, "answers.json", case["answers"])]
    if patient:
        args += ["--patient", write(tmp_path, "patient.json", case["patient"])]
    return [*args, "--authored", case["authored"]]


def _assess(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["assess", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _ok_json(capsys, *argv: str) -> dict[str, Any]:
    code, out, err = _assess(capsys, *argv)
    assert code == 0, err
    return json.loads(out)


# --- the JSON contract -------------------------------------------------------------------

def test_json_is_the_contract_for_a_red_flag_case(tmp_path: Path, capsys, kb) -> None:
    code, out, err = _assess(capsys, *_case_args(tmp_path, CES))
    assert code == 0, err
    assert err == ""
    result = json.loads(out)
    assert list(result) == CONTRACT_KEYS
    assert result["urgency"] == "emergency"
    assert [f["id"] for f in result["red_flags"]] == ["cauda-equina-syndrome"]
    assert "bladder-dysfunction" in result["red_flags"][0]["findings"]
    # in an emergency only the emergency referrals remain, and they are all stat
    assert [(r["service"], r["priority"]) for r in result["referrals"]] == \
        [("emergency-department", "stat"), ("mri-lumbar-spine", "stat")]
    assert result["pt_focus"] == []
    top = result["differential"][0]
    assert (top["condition"], top["rank"], top["suggested"]) == ("lumbar-radiculopathy", 1, True)
    assert result["knowledge_version"] == kb.decision.version
    assert "a suggestion" in result["disclaimer"]


def test_json_of_a_routine_case_keeps_routine_referrals(tmp_path: Path, capsys) -> None:
    result = _ok_json(capsys, *_case_args(tmp_path, _case("pht-runner-16-weeks-loading")))
    assert result["urgency"] == "routine" and result["red_flags"] == []
    assert result["differential"][0]["condition"] == "proximal-hamstring-tendinopathy"
    services = {r["service"]: r["priority"] for r in result["referrals"]}
    assert services["physiotherapy"] == "routine"
    assert {"mri-pelvis-hamstring", "injection-consultation"} <= set(services)
    assert result["pt_focus"]  # no emergency: the physiotherapy focus is given


def test_the_patient_birth_date_gives_the_age_the_engine_uses(tmp_path: Path, capsys) -> None:
    """Identical answers; only the Patient differs (75 vs 25 years old): stenosis leads
    only for the older patient, so --patient really reaches the engine."""
    older, younger = _case("stenosis-age-75"), _case("same-story-age-25")
    assert older["answers"] == younger["answers"]
    top = {}
    for case in (older, younger):
        result = _ok_json(capsys, *_case_args(tmp_path, case))
        top[case["patient"]["id"]] = result["differential"][0]["condition"]
    assert top == {"lss-075": "lumbar-spinal-stenosis", "lss-025": "referred-lumbar-pain"}


def test_authored_is_the_date_the_age_is_taken_on(tmp_path: Path, capsys) -> None:
    """The 75-year-old's exam dated 1977 (she was 26): no longer a stenosis picture."""
    older = _case("stenosis-age-75")
    args = _case_args(tmp_path, older)
    args[-1] = "1977-06-01T10:00:00+00:00"
    result = _ok_json(capsys, *args)
    assert result["differential"][0]["condition"] != "lumbar-spinal-stenosis"


def test_reads_answers_from_stdin(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(CES["answers"])))
    result = _ok_json(capsys, "-", "--authored", CES["authored"])
    assert result["urgency"] == "emergency"


# --- text --------------------------------------------------------------------------------

def test_text_is_a_clinician_summary_led_by_the_emergency(tmp_path: Path, capsys,
                                                          kb) -> None:
    code, out, err = _assess(capsys, *_case_args(tmp_path, CES), "--format", "text")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Urgency: EMERGENCY (same day)"
    assert lines[1].startswith("  RED FLAG - Suspected cauda equina syndrome:")
    assert "New bladder dysfunction" in lines[1]
    sections = [line for line in lines if line.endswith(":") and not line.startswith(" ")]
    assert sections[:2] == ["Differential (ranked):", "Referrals:"]
    assert lines.index("Differential (ranked):") < lines.index("Referrals:")
    assert any(line.startswith("  1. Lumbar radiculopathy") for line in lines)
    referrals = [line for line in lines if line.startswith("  - ") and "[stat]" in line]
    assert len(referrals) == 2
    assert not any("[routine]" in line or "[urgent]" in line for line in lines)
    assert kb.decision.disclaimer in lines and "a suggestion" in out
    assert lines[-1] == f"Knowledge version {kb.decision.version}."
    assert out.endswith("\n") and not out.lstrip().startswith("{")


def test_text_of_a_normal_exam_says_nothing_is_supported(tmp_path: Path, capsys) -> None:
    code, out, err = _assess(capsys, *_case_args(tmp_path, _case("normal-exam")),
                             "--format", "text")
    assert code == 0, err
    assert out.startswith("Urgency: Routine\n")
    assert "No condition is supported by the recorded findings." in out
    assert "Referrals:\n  None suggested." in out
    assert "a suggestion" in out


# --- fhir --------------------------------------------------------------------------------


def test_fhir_is_a_collection_of_suggestions_whose_references_resolve(tmp_path: Path,
                                                                      capsys) -> None:
    bundle = _ok_json(capsys, *_case_args(tmp_path, CES), "--format", "fhir")
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "collection")
    assert all("request" not in e for e in bundle["entry"])  # a collection, not a transaction
    by_url = _by_url(bundle)
    kinds = {r["resourceType"] for r in by_url.values()}
    assert kinds == {"Condition", "ServiceRequest", "Observation", "QuestionnaireResponse"}

    condition, = _of_type(bundle, "Condition")
    assert condition["verificationStatus"]["coding"][0]["code"] == "differential"
    assert {"system": DECISION_SUPPORT, "code": "lumbar-radiculopathy"}.items() <= \
        next(c for c in condition["code"]["coding"] if c["system"] == DECISION_SUPPORT).items()
    assert condition["subject"]["reference"] == "Patient/ces-042"
    assert condition["recordedDate"] == CES["authored"]
    evidence = [d["reference"] for e in condition["evidence"] for d in e["detail"]]
    assert evidence and all(by_url[r]["resourceType"] == "Observation" for r in evidence)

    requests = _of_type(bundle, "ServiceRequest")
    assert [next(c["code"] for c in r["code"]["coding"] if c["system"] == DECISION_SUPPORT)
            for r in requests] == ["emergency-department", "mri-lumbar-spine"]
    for request in requests:
        assert (request["status"], request["intent"], request["priority"]) == \
            ("draft", "proposal", "stat")
        assert request["subject"]["reference"] == "Patient/ces-042"

    # every reference inside the Bundle resolves (only the Patient lives outside it) ...
    inside = [r for r in _references(bundle) if r.startswith("urn:uuid:")]
    assert inside and all(r in by_url for r in inside)
    assert {r for r in _references(bundle) if not r.startswith("urn:uuid:")} == \
        {"Patient/ces-042"}
    # ... and nothing is in it that no suggestion needs (no Device, no Provenance)
    referenced = set(inside)
    for url, resource in by_url.items():
        if resource["resourceType"] not in ("Condition", "ServiceRequest"):
            assert url in referenced, (url, resource["resourceType"])


def test_fhir_takes_the_subject_from_a_response_that_has_one(tmp_path: Path, capsys,
                                                             kb) -> None:
    exam = pipeline.exam_from_input(kb, CES["answers"], patient=CES["patient"],
                                    now=parse_aware(CES["authored"]))
    qr = responses.build(exam)
    assert qr["subject"]["reference"] == "Patient/ces-042"
    bundle = _ok_json(capsys, write(tmp_path, "qr.json", qr), "--format", "fhir")
    assert _of_type(bundle, "Condition")
    assert {r["subject"]["reference"] for r in _of_type(bundle, "ServiceRequest")} == \
        {"Patient/ces-042"}


def test_fhir_without_a_subject_exits_2(tmp_path: Path, capsys) -> None:
    code, out, err = _assess(capsys, *_case_args(tmp_path, CES, patient=False),
                             "--format", "fhir")
    assert code == 2
    assert out == ""
    assert err.startswith("error: --format fhir: ")
    assert "need a subject" in err and "Traceback" not in err


def test_json_and_text_need_no_subject(tmp_path: Path, capsys) -> None:
    code, out, err = _assess(capsys, *_case_args(tmp_path, CES, patient=False),
                             "--format", "text")
    assert code == 0, err
    assert out.startswith("Urgency: EMERGENCY")


# --- refusals ----------------------------------------------------------------------------

def test_invalid_answers_exit_1_with_one_line_per_problem(tmp_path: Path, capsys) -> None:
    answers = write(tmp_path, "a.json", {"slr.left.onset-angle": 120, "pain.current": "4",
                                         "made.up": True})
    code, out, err = _assess(capsys, answers, "--format", "text")
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "error: 3 question(s) have invalid answers:"
    problems = {line.strip().split(":")[0] for line in lines[1:]}
    assert problems == {"slr.left.onset-angle", "pain.current", "made.up"}
    assert "  slr.left.onset-angle: 120 is out of range" in err
    assert "  made.up: Unknown linkId" in err


def test_invalid_answers_are_reported_before_the_missing_subject(tmp_path: Path,
                                                                 capsys) -> None:
    code, out, err = _assess(capsys, write(tmp_path, "a.json", {"pain.current": 11}),
                             "--format", "fhir")
    assert (code, out) == (1, "")
    assert "  pain.current: " in err


def test_a_patient_that_is_not_a_patient_exits_1(tmp_path: Path, capsys) -> None:
    code, out, err = _assess(capsys, write(tmp_path, "a.json", CES["answers"]), "--patient",
                             write(tmp_path, "p.json", {"resourceType": "Practitioner"}))
    assert (code, out) == (1, "")
    assert "Expected a FHIR Patient" in err


@pytest.mark.parametrize(("files", "extra", "message"), [
    ({}, ["missing.json"], "cannot read {tmp}/missing.json"),
    ({"a.json": "{not json"}, ["a.json"], "a.json is not valid JSON (line 1"),
    ({"a.json": "{}"}, ["a.json", "--patient", "nope.json"], "cannot read {tmp}/nope.json"),
    ({"a.json": "{}", "p.json": "[1,"}, ["a.json", "--patient", "p.json"],
     "p.json is not valid JSON"),
    ({"a.json": "{}"}, ["a.json", "--authored", "yesterday"], "is not an ISO 8601"),
    ({"a.json": "[" * 100 + "]" * 100}, ["a.json"], "nests JSON deeper than 64 levels"),
    ({"a.json": "{}"}, ["a.json", "--format", "xml"], "invalid choice: 'xml'"),
])
def test_unusable_input_exits_2(tmp_path: Path, capsys, files, extra, message) -> None:
    for name, text in files.items():
        write(tmp_path, name, text)
    args = [str(tmp_path / a) if a.endswith(".json") else a for a in extra]
    code, out, err = _assess(capsys, *args)
    assert code == 2
    assert out == ""
    assert message.format(tmp=tmp_path) in err
    assert "Traceback" not in err


def test_broken_data_files_exit_3(tmp_path: Path, monkeypatch, capsys) -> None:
    folder = tmp_path / "questionnaires"
    folder.mkdir()
    (folder / "exam.json").write_text('{"resourceType": "Questionnaire",', encoding="utf-8")
    monkeypatch.setitem(DEFAULTS, "QUESTIONNAIRES_DIR", str(folder))
    monkeypatch.setattr(plugin, "create_app", _CREATE_APP)  # a real start-up, not the cache
    code, out, err = _assess(capsys, write(tmp_path, "a.json", CES["answers"]),
                             "--format", "text")
    assert (code, out) == (3, "")
    assert "broken data file" in err and "exam.json" in err


def test_help_says_it_is_a_suggestion(capsys) -> None:
    assert main(["assess", "--help"]) == 0
    out = capsys.readouterr().out
    assert "suggestion" in out and "--format" in out and "{json,text,fhir}" in out


# --- the real process: same input, same bytes ------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "fhir"])
def test_same_input_gives_byte_identical_output_in_any_process(tmp_path: Path,
                                                               fmt: str) -> None:
    """Two interpreters with different hash seeds (set and dict orders differ between
    them): the output must still be the same bytes."""
    args = ["assess", *_case_args(tmp_path, _case("waterskier-avulsion-palpable-gap")),
            "--format", fmt]
    first = run(*args, env={"PYTHONHASHSEED": "1"})
    second = run(*args, env={"PYTHONHASHSEED": "4242"})
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.stderr == second.stderr == ""
    assert first.stdout == second.stdout
    result = json.loads(first.stdout)
    if fmt == "json":
        assert result["urgency"] == "urgent" and "a suggestion" in result["disclaimer"]
    else:
        assert result["type"] == "collection" and _of_type(result, "ServiceRequest")
