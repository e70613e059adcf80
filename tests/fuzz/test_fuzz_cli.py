"""Fuzzing the CLI (issue 13): hostile copies of a valid answers file and Patient file
given to ``extract`` and ``assess``. For every case: exit 0, 1 or 2, never an exception;
on a refusal an ``error:`` line on stderr and nothing on stdout; never a traceback.

In process (``plugin.__main__.main``), with the app built once: building it per case
(knowledge, store) would spend the time budget on start-up, not on input. The CLI as a
subprocess is covered by tests/test_cli*.py and tests/web/test_hostile_input.py.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import plugin
from plugin.__main__ import main
from tests.support import cds
from tests.support.fuzz import FUZZ, encode, mutants

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
CASE = cds.case("l5-s1-disc-radiculopathy")


@pytest.fixture()
def cli(app, monkeypatch, tmp_path, capsys):
    """Run the CLI on two files; (exit code, stdout, stderr)."""
    monkeypatch.setattr(plugin, "create_app", lambda *a, **k: app)

    def run(command: str, answers: bytes, patient: bytes) -> tuple[int, str, str]:
        (tmp_path / "a.json").write_bytes(answers)
        (tmp_path / "p.json").write_bytes(patient)
        capsys.readouterr()
        code = main([command, str(tmp_path / "a.json"), "--patient", str(tmp_path / "p.json"),
                     "--authored", "2026-11-21T10:00:00+00:00"])
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.mark.parametrize("command", ["extract", "assess"])
def test_hostile_files_get_a_message_and_an_exit_code(cli, command) -> None:
    answers, patient = encode(CASE["answers"]), encode(CASE["patient"])

    @FUZZ
    @given(which=st.sampled_from(["answers", "patient"]),
           doc=st.sampled_from([CASE["answers"], CASE["patient"]]).flatmap(mutants),
           garbage=st.sampled_from([None, b"\xff\xfe", b"", b"{", b"\xef\xbb\xbf{}"]))
    def case(which: str, doc: Any, garbage: bytes | None) -> None:
        mutated = garbage if garbage is not None else encode(doc)
        code, out, err = cli(command, mutated if which == "answers" else answers,
                             mutated if which == "patient" else patient)
        assert code in (0, 1, 2), (code, err)
        assert "Traceback" not in err
        if code:
            assert err.startswith("error: ") and not out, err
        else:
            json.loads(out)

    case()
    code, out, _ = cli(command, answers, patient)
    assert code == 0 and json.loads(out)
