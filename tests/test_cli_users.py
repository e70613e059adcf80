"""``python -m plugin users …`` as an administrator runs it: passwords on stdin only, one
line and a non-zero exit on bad input."""
from __future__ import annotations

import json

import pytest

from tests.support.cli import run

PASSWORD = "a long clinic passphrase\n"


@pytest.fixture()
def env(tmp_path):
    return {"PLUGIN_DATABASE_URL": f"sqlite:///{tmp_path / 'users.sqlite3'}",
            "PLUGIN_SECRET_KEY": "cli-test"}


def test_add_list_disable_and_set_password(env) -> None:
    added = run("users", "add", "ann", "--role", "admin", "--also-clinician",
                "--name", "Dr Ann Lee", "--identifier", "http://hl7.org/fhir/sid/us-npi|1234567893",
                "--password-stdin", stdin=PASSWORD, env=env)
    assert added.returncode == 0, added.stderr
    assert "added ann (admin, clinician)" in added.stderr
    assert PASSWORD.strip() not in added.stderr + added.stdout
    assert run("users", "add", "bob", "--role", "assistant", "--name", "Bob Roe",
               "--password-stdin", stdin="another long passphrase\n", env=env).returncode == 0
    listed = run("users", "list", "--format", "json", env=env)
    assert json.loads(listed.stdout) == [
        {"username": "ann", "name": "Dr Ann Lee", "roles": ["admin", "clinician"],
         "active": True, "identifier": "http://hl7.org/fhir/sid/us-npi|1234567893"},
        {"username": "bob", "name": "Bob Roe", "roles": ["assistant"], "active": True,
         "identifier": None}]
    assert run("users", "disable", "bob", env=env).returncode == 0
    assert "bob\tBob Roe\tassistant\tdisabled" in run("users", "list", env=env).stdout
    changed = run("users", "set-password", "ann", "--password-stdin",
                  stdin="a brand new passphrase\n", env=env)
    assert changed.returncode == 0 and "password set for ann" in changed.stderr


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (("add", "ann", "--role", "clinician", "--name", "Ann", "--password-stdin"), "short\n",
     "at least 15 characters"),
    (("add", "ann", "--role", "clinician", "--name", "Ann", "--password-stdin"),
     "passwordpassword\n", "commonly used"),
    (("add", "ann", "--role", "clinician", "--name", "Ann", "--password-stdin"), "",
     "no password on standard input"),
    (("add", "ann", "--role", "assistant", "--also-clinician", "--name", "Ann",
      "--password-stdin"), PASSWORD, "Only an admin"),
    (("add", "ann", "--role", "clinician", "--name", "Ann", "--identifier", "npi",
      "--password-stdin"), PASSWORD, "SYSTEM|VALUE"),
    (("disable", "nobody"), None, "No user 'nobody'"),
    (("set-password", "nobody", "--password-stdin"), PASSWORD, "No user 'nobody'"),
])
def test_bad_input_is_one_line_and_exit_2(env, args, stdin, message) -> None:
    result = run("users", *args, stdin=stdin, env=env)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_taken_username_and_a_missing_role(env) -> None:
    assert run("users", "add", "ann", "--role", "clinician", "--name", "Ann",
               "--password-stdin", stdin=PASSWORD, env=env).returncode == 0
    again = run("users", "add", "ANN", "--role", "clinician", "--name", "Ann",
                "--password-stdin", stdin=PASSWORD, env=env)
    assert again.returncode == 2 and "The username 'ann' is taken." in again.stderr
    no_role = run("users", "add", "bob", "--name", "Bob", "--password-stdin", stdin=PASSWORD,
                  env=env)
    assert no_role.returncode == 2 and "--role" in no_role.stderr
