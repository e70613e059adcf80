"""External identities linked to users, on SQLite and PostgreSQL: matched on issuer,
kind and subject only; a first sign-in makes a user without a local password, whose
sign-in by password never succeeds and never locks them out."""
from __future__ import annotations

import datetime as dt

from plugin.adapters import identities, users

NOW = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc)
OP = "https://login.hospital.example"
EHR = "https://ehr.example/fhir"


def _link(store, subject="u-1", hint="rdiaz", kind="oidc", issuer=OP):
    return identities.link_new_user(store, issuer=issuer, kind=kind, subject=subject,
                                    display_name="Dr Rosa  Diaz", role="clinician",
                                    username_hint=hint, now=NOW)


def test_a_linked_person_is_found_by_issuer_and_subject_only(store) -> None:
    user = _link(store)
    assert (user.username, user.display_name, user.has_password) == ("rdiaz", "Dr Rosa Diaz",
                                                                     False)
    assert identities.find(store, OP, "oidc", "u-1") == user
    assert identities.find(store, "https://other.example", "oidc", "u-1") is None
    assert identities.find(store, OP, "fhirUser", "u-1") is None
    # linking the same identity again (a second process) gives the same user
    assert _link(store) == user and len(users.all_users(store)) == 1


def test_a_taken_username_gets_a_suffix_not_someone_elses_account(store) -> None:
    users.add(store, "rdiaz", display_name="Rita Diaz", role="assistant",
              password="a long clinic passphrase", now=NOW)
    linked = _link(store, subject="u-2")
    assert linked.username.startswith("rdiaz-") and linked.role == "clinician"
    assert _link(store, subject="u-3", hint="!!!").username.startswith("sso-")


def test_an_account_without_a_password_cannot_sign_in_by_password_or_be_locked(store) -> None:
    user = _link(store)
    for _ in range(users.MAX_FAILURES + 1):
        assert users.authenticate(store, "rdiaz", "!", now=NOW) is None
    assert users.get(store, user.id).locked_until is None
    assert not users.verify_password(store, user, "!", now=NOW)


def test_the_practitioner_at_an_ehr_comes_from_the_launch_identity(store) -> None:
    user = _link(store, subject=f"{EHR}/Practitioner/dr-lee", kind="fhirUser", issuer=EHR)
    assert identities.practitioner_at(store, user.id, EHR + "/") == "Practitioner/dr-lee"
    assert identities.practitioner_at(store, user.id, "https://other.example/fhir") is None
    assert identities.ehr_practitioners(store, user.id) == [(EHR, "dr-lee")]


def test_only_a_launch_identity_names_an_ehr_practitioner(store) -> None:
    user = _link(store, subject=f"{OP}/Practitioner/not-an-ehr")  # an OP's sub, not fhirUser
    assert identities.ehr_practitioners(store, user.id) == []
    odd = _link(store, subject=f"{EHR}/Patient/p-1", kind="fhirUser", issuer=EHR, hint="x")
    assert identities.ehr_practitioners(store, odd.id) == []


def test_the_providers_role_replaces_the_old_one(store) -> None:
    user = _link(store)
    changed = identities.set_role(store, user, "assistant", now=NOW)
    assert users.get(store, user.id).role == "assistant" == changed.role
