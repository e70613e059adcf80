"""Accounts, lock-out, sessions and the first-account link, on SQLite and PostgreSQL:
what every process shares is in the database (``store``: tests/adapters/conftest.py)."""
from __future__ import annotations

import datetime as dt

import pytest

from plugin.adapters import sessions, setup_link, users

NOW = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc)
PASSWORD = "a long clinic passphrase"
IDLE, LIFETIME = dt.timedelta(minutes=15), dt.timedelta(hours=12)


def _add(store, username="ann", role="clinician", **extra):
    return users.add(store, username, display_name="Dr Ann Lee", role=role,
                     password=PASSWORD, now=NOW, **extra)


def test_a_user_is_stored_with_an_argon2id_hash_and_roles(store) -> None:
    user = _add(store, "Ann.Lee", role="admin", also_clinician=True,
                identifier="http://hl7.org/fhir/sid/us-npi|1234567893")
    assert user.username == "ann.lee" and user.roles == {"admin", "clinician"}
    assert (user.identifier_system, user.identifier_value) == (
        "http://hl7.org/fhir/sid/us-npi", "1234567893")
    with store.engine.connect() as conn:
        hashed = conn.exec_driver_sql("SELECT password_hash FROM users").scalar_one()
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    assert users.get(store, user.id) == user and users.by_username(store, "ANN.LEE") == user


@pytest.mark.parametrize(("change", "field"), [
    ({"username": "ann"}, "username"),  # taken
    ({"username": "ann lee"}, "username"),
    ({"role": "nurse"}, "role"),
    ({"role": "assistant", "also_clinician": True}, "role"),
    ({"display_name": "  "}, "name"),
    ({"password": "too short"}, "password"),
    ({"identifier": "no-bar"}, "identifier"),
])
def test_bad_accounts_are_refused_with_the_field(store, change, field) -> None:
    _add(store)
    options = {"username": "bob", "display_name": "Bob", "role": "clinician",
               "password": PASSWORD, "now": NOW, **change}
    with pytest.raises(users.UserError) as caught:
        users.add(store, options.pop("username"), **options)
    assert caught.value.field == field


def test_sign_in_and_the_same_answer_for_every_failure(store) -> None:
    user = _add(store)
    assert users.authenticate(store, "ANN", PASSWORD, now=NOW) == user
    assert users.authenticate(store, "ann", "wrong password here", now=NOW) is None
    assert users.authenticate(store, "nobody", PASSWORD, now=NOW) is None
    users.disable(store, "ann", now=NOW)
    assert users.authenticate(store, "ann", PASSWORD, now=NOW) is None


def test_five_failures_lock_the_account_for_fifteen_minutes(store) -> None:
    _add(store)
    for _ in range(users.MAX_FAILURES):
        assert users.authenticate(store, "ann", "wrong password here", now=NOW) is None
    assert users.by_username(store, "ann").locked_until == NOW + dt.timedelta(minutes=15)
    # the right password does not open a locked account ...
    assert users.authenticate(store, "ann", PASSWORD, now=NOW + dt.timedelta(minutes=14)) is None
    # ... until the lock has passed
    assert users.authenticate(store, "ann", PASSWORD, now=NOW + dt.timedelta(minutes=16))


def test_a_lock_ends_the_accounts_open_sessions(store) -> None:
    ann = _add(store)
    token = sessions.begin(store, ann.id, now=NOW)
    for _ in range(users.MAX_FAILURES):
        users.authenticate(store, "ann", "wrong password here", now=NOW)
    assert sessions.current(store, token, now=NOW, idle=IDLE, lifetime=LIFETIME) is None


def test_four_failures_then_success_start_the_count_again(store) -> None:
    _add(store)
    for _ in range(4):
        users.authenticate(store, "ann", "wrong password here", now=NOW)
    assert users.authenticate(store, "ann", PASSWORD, now=NOW)
    for _ in range(4):
        users.authenticate(store, "ann", "wrong password here", now=NOW)
    assert users.authenticate(store, "ann", PASSWORD, now=NOW)


def test_an_address_with_many_failures_is_throttled(store) -> None:
    for i in range(users.ADDRESS_FAILURES):
        assert not users.address_throttled(store, "10.0.0.9", now=NOW)
        users.authenticate(store, f"guess{i}", PASSWORD, now=NOW, address="10.0.0.9")
    assert users.address_throttled(store, "10.0.0.9", now=NOW)
    assert not users.address_throttled(store, "10.0.0.10", now=NOW)
    assert not users.address_throttled(
        store, "10.0.0.9", now=NOW + dt.timedelta(minutes=users.ADDRESS_WINDOW_MINUTES + 1))


def test_set_password_checks_the_policy_and_unlocks(store) -> None:
    _add(store)
    for _ in range(users.MAX_FAILURES):
        users.authenticate(store, "ann", "wrong password here", now=NOW)
    with pytest.raises(users.UserError, match="at least 15"):
        users.set_password(store, "ann", "short", now=NOW)
    users.set_password(store, "ann", "another long passphrase", now=NOW)
    assert users.authenticate(store, "ann", "another long passphrase", now=NOW)
    assert not users.authenticate(store, "ann", PASSWORD, now=NOW)


def test_sessions_end_when_idle_too_long_at_their_lifetime_and_on_sign_out(store) -> None:
    user = _add(store)
    token = sessions.begin(store, user.id, now=NOW)
    other = sessions.begin(store, user.id, now=NOW)
    assert token != other

    def live(token, at):
        return sessions.current(store, token, now=at, idle=IDLE, lifetime=LIFETIME)

    # activity every 14 minutes keeps it for 12 hours, not longer
    at = NOW
    while at + dt.timedelta(minutes=14) < NOW + LIFETIME:
        at += dt.timedelta(minutes=14)
        assert live(token, at) is not None
    assert live(token, NOW + LIFETIME + dt.timedelta(seconds=1)) is None
    # 15 idle minutes end it; the token never works again
    assert live(other, NOW + dt.timedelta(minutes=15, seconds=1)) is None
    assert live(other, NOW) is None
    third = sessions.begin(store, user.id, now=NOW)
    sessions.end(store, third)
    assert live(third, NOW) is None
    assert live("forged", NOW) is None and live(None, NOW) is None


def test_ending_all_of_a_users_sessions(store) -> None:
    ann, bob = _add(store), _add(store, "bob")
    tokens = [sessions.begin(store, ann.id, now=NOW) for _ in range(2)]
    kept = sessions.begin(store, bob.id, now=NOW)
    assert sessions.end_all(store, ann.id) == 2
    assert all(sessions.current(store, t, now=NOW, idle=IDLE, lifetime=LIFETIME) is None
               for t in tokens)
    assert sessions.current(store, kept, now=NOW, idle=IDLE, lifetime=LIFETIME)


def test_the_setup_link_works_once_within_the_hour_and_only_with_no_user(store) -> None:
    token = setup_link.issue(store, now=NOW)
    assert setup_link.valid(store, token, now=NOW + dt.timedelta(minutes=59))
    assert not setup_link.valid(store, token, now=NOW + dt.timedelta(minutes=61))
    assert not setup_link.valid(store, token + "x", now=NOW)
    assert setup_link.redeem(store, token, now=NOW)
    assert not setup_link.redeem(store, token, now=NOW)  # single use
    _add(store)
    assert setup_link.issue(store, now=NOW) is None
    assert not setup_link.valid(store, token, now=NOW)


def test_a_new_setup_link_replaces_the_old_one(store) -> None:
    first = setup_link.issue(store, now=NOW)
    second = setup_link.issue(store, now=NOW)
    assert not setup_link.valid(store, first, now=NOW)
    assert setup_link.valid(store, second, now=NOW)
    assert not setup_link.redeem(store, second, now=NOW + dt.timedelta(hours=2))
