"""The audit trail of sign-in and of writes made through the pages: sign-in, failed
sign-in (unknown user and wrong password alike, never the password), lock-out, sign-out,
the first account and the users commands; a patient registered and an exam begun on the
tablet, naming the signed-in user and the address. On SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import json
import logging
import re

import pytest

from plugin.adapters import audit, setup_link, store as store_mod
from tests.support.cli import run
from tests.support.conformance import assert_conformant
from tests.support.signin import PASSWORD, log_in, signed_in, user

ADDRESS = "127.0.0.1"  # the test client's remote address


@pytest.fixture()
def app(make_app, database_url):
    return make_app({"DATABASE_URL": database_url})


def _trail(app) -> list[dict]:
    return [json.loads(t) for t in audit.events_since(store_mod.from_app(app).engine, None)]


def _kind(event: dict) -> tuple:
    subtype = (event.get("subtype") or [{}])[0].get("code")
    facts = audit.facts(event)
    return (event["type"]["code"], subtype, event["action"], event["outcome"], facts.agent,
            facts.address)


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_sign_in_failures_and_sign_out_are_audited_without_the_password(app,
                                                                        validator) -> None:
    user(app)
    client = app.test_client()
    log_in(client, "test-clinician", "not the right password at all")
    log_in(client, "nobody-at-all", "not the right password at all")
    log_in(client, "test-clinician")
    page = client.get("/patients").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": _csrf(page)})
    events = _trail(app)
    assert [_kind(e) for e in events] == [
        ("110114", "110122", "E", "4", "test-clinician", ADDRESS),
        ("110114", "110122", "E", "4", "nobody-at-all", ADDRESS),
        ("110114", "110122", "E", "0", "test-clinician", ADDRESS),
        # the patients page read to find the sign-out form (a search that found nobody)
        ("rest", "search-type", "E", "0", "test-clinician", ADDRESS),
        ("110114", "110123", "E", "0", "test-clinician", ADDRESS)]
    # a wrong password and an unknown user look alike in the trail too
    assert "display" not in events[0]["agent"][0]["who"]
    assert events[2]["agent"][0]["who"]["display"] == "Dr Ann Lee"
    text = json.dumps(events)
    assert "not the right password" not in text and PASSWORD not in text
    for event in events:
        assert_conformant(validator, event)


def test_the_fifth_failure_locks_the_account_and_is_audited_once(app, validator) -> None:
    user(app)
    for _ in range(6):
        log_in(app.test_client(), "test-clinician", "not the right password at all")
    kinds = [_kind(e) for e in _trail(app)]
    assert kinds.count(("110113", "110137", "E", "0", "test-clinician", ADDRESS)) == 1
    assert kinds.index(("110113", "110137", "E", "0", "test-clinician", ADDRESS)) == 4
    [lock] = [e for e in _trail(app) if e["type"]["code"] == "110113"]
    assert "locked until" in lock["entity"][0]["description"]
    assert_conformant(validator, lock)


def test_the_first_account_is_audited_as_its_own_creation(app, validator) -> None:
    store = store_mod.from_app(app)
    token = setup_link.issue(store, now=dt.datetime.now(dt.timezone.utc))
    client = app.test_client()
    page = client.get(f"/setup?token={token}").get_data(as_text=True)
    response = client.post("/setup", data={
        "token": token, "username": "ann", "name": "Dr Ann Lee", "identifier": "",
        "password": "a long first admin passphrase", "csrf_token": _csrf(page)})
    assert response.status_code == 303
    [event] = _trail(app)
    assert _kind(event) == ("110113", "110137", "C", "0", "ann", ADDRESS)
    assert event["entity"][0]["what"]["identifier"]["value"] == "ann"
    assert event["entity"][0]["description"] == "add"
    assert_conformant(validator, event)


def test_the_users_commands_are_audited_to_the_command_line(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'users.sqlite3'}"
    env = {"PLUGIN_DATABASE_URL": url, "PLUGIN_SECRET_KEY": "cli-test"}
    assert run("users", "add", "bob", "--role", "assistant", "--name", "Bob Roe",
               "--password-stdin", stdin="another long passphrase\n", env=env).returncode == 0
    assert run("users", "set-password", "bob", "--password-stdin",
               stdin="a brand new passphrase\n", env=env).returncode == 0
    assert run("users", "disable", "bob", env=env).returncode == 0
    assert run("users", "disable", "nobody", env=env).returncode == 2
    store = store_mod.Store(url)
    events = [json.loads(t) for t in audit.events_since(store.engine, None)]
    store.dispose()
    assert [(e["action"], e["entity"][0]["description"],
             e["entity"][0]["what"]["identifier"]["value"]) for e in events] == [
        ("C", "add", "bob"), ("U", "set-password", "bob"), ("U", "disable", "bob")]
    for event in events:
        assert event["agent"][0]["who"] == {"display": "command line"}
        assert "passphrase" not in json.dumps(event)


def test_tablet_writes_name_the_signed_in_user_and_pass_both_validators(
        app, validator, caplog) -> None:
    client = signed_in(app, "assistant")
    with caplog.at_level(logging.DEBUG):
        added = client.post("/patients", data={
            "family": "Okonkwo-Quist", "given": "Adaeze", "birth_date": "1986-03-14",
            "identifier": "MRN-40961"})
        assert added.status_code == 303, added.get_data(as_text=True)
        patient_id = added.headers["Location"].rsplit("/", 1)[1]
        begun = client.post(f"/patients/{patient_id}/exams")
        assert begun.status_code == 303
    events = _trail(app)
    assert [_kind(e)[2:] for e in events] == [("C", "0", "test-assistant", ADDRESS)] * 2
    assert [audit.facts(e).resource.split("/")[0] for e in events] == \
        ["Patient", "QuestionnaireResponse"]
    assert {audit.facts(e).patient_id for e in events} == {patient_id}
    for event in events:
        assert_conformant(validator, event)
    assert "Okonkwo" not in caplog.text and "MRN-40961" not in caplog.text


def test_a_page_write_whose_audit_fails_is_refused_and_changes_nothing(app, monkeypatch) -> None:
    from sqlalchemy import exc

    client = signed_in(app, "assistant")

    def broken(connection, event):
        raise exc.OperationalError("INSERT INTO audit_events", {}, Exception("disk full"))

    monkeypatch.setattr(audit, "append", broken)
    refused = client.post("/patients", data={
        "family": "Okonkwo-Quist", "given": "Adaeze", "birth_date": "1986-03-14",
        "identifier": "MRN-40961"})
    assert refused.status_code == 503
    assert store_mod.from_app(app).patients() == []
