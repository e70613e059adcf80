"""Who a person is outside the service, linked to their user: an identity provider's
``sub`` (single sign-on, kind ``oidc``) or an EHR's Practitioner URL (``fhirUser``,
sign-in by EHR launch), each under the issuer that vouches for it.

Sign-in matches on (issuer, kind, subject) only, never on a name or an e-mail address
(those can be reused or changed at the provider; the subject cannot). A person seen for
the first time becomes a user without a local password (``users.NO_PASSWORD``) in the
same transaction as the link and the AuditEvent, when the setting allows it; two
processes doing it at once are settled by the unique key (the loser reads the winner's).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from . import engine as engine_mod
from . import users as users_mod
from .store import Store, _audit
from .tables import ROLES, identities, users

__all__ = ["Identity", "ehr_practitioners", "find", "link_new_user", "of_user",
           "practitioner_at", "set_role"]

#: A FHIR Practitioner id at the end of a fhirUser URL.
_PRACTITIONER = re.compile(r"Practitioner/([A-Za-z0-9\-.]{1,64})")


@dataclass(frozen=True)
class Identity:
    """One external identity of a user."""

    user_id: str
    issuer: str
    kind: str
    subject: str


def find(store: Store, issuer: str, kind: str, subject: str) -> users_mod.User | None:
    """The user linked to this identity, or None."""
    with store.engine.connect() as conn:
        user_id = conn.execute(select(identities.c.user_id).where(
            identities.c.issuer == issuer, identities.c.kind == kind,
            identities.c.subject == subject)).scalar()
    return users_mod.get(store, str(user_id)) if user_id is not None else None


def of_user(store: Store, user_id: str) -> list[Identity]:
    """A user's external identities (where the step-up before a signature can go)."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(identities).where(identities.c.user_id == user_id)
                            .order_by(identities.c.created)).mappings().all()
    return [Identity(str(r["user_id"]), r["issuer"], r["kind"], r["subject"]) for r in rows]


def practitioner_at(store: Store, user_id: str, fhir_base: str) -> str | None:
    """``Practitioner/<id>`` of the user at the EHR whose FHIR base is ``fhir_base``
    (their fhirUser from a launch there), or None."""
    prefix = fhir_base.strip().rstrip("/") + "/"
    for identity in of_user(store, user_id):
        if identity.kind == "fhirUser" and identity.subject.startswith(prefix):
            match = _PRACTITIONER.fullmatch(identity.subject[len(prefix):])
            if match:
                return f"Practitioner/{match.group(1)}"
    return None


def ehr_practitioners(store: Store, user_id: str) -> list[tuple[str, str]]:
    """``(EHR FHIR base, Practitioner id)`` of each EHR the user signed in from by launch
    (their fhirUser there), oldest first: what links our Practitioner to the EHR's."""
    found = []
    for identity in of_user(store, user_id):
        base, slash, tail = identity.subject.rpartition("/Practitioner/")
        if identity.kind == "fhirUser" and slash and "://" in base \
                and _PRACTITIONER.fullmatch(f"Practitioner/{tail}"):
            found.append((base, tail))
    return found


def link_new_user(store: Store, *, issuer: str, kind: str, subject: str, display_name: str,
                  role: str, username_hint: str | None, now: dt.datetime,
                  audit: users_mod.UserAudit | None = None) -> users_mod.User:
    """A new user (no local password) linked to this identity, in one transaction."""
    if role not in ROLES:
        raise users_mod.UserError(f"The role is one of {', '.join(ROLES)}.", "role")
    display = " ".join((display_name or "").split())[:users_mod.NAME_LENGTH] or subject[:80]
    user_id = str(uuid.uuid4())
    row = {"id": user_id, "username": "", "display_name": display, "role": role,
           "also_clinician": False, "identifier_system": None, "identifier_value": None,
           "password_hash": users_mod.NO_PASSWORD, "active": True, "failed_attempts": 0,
           "locked_until": None, "created": now, "updated": now}
    for username in _usernames(username_hint, issuer, subject):
        row["username"] = username
        try:
            with engine_mod.writer(store.engine).begin() as conn:
                conn.execute(insert(users).values(**row))
                conn.execute(insert(identities).values(
                    id=str(uuid.uuid4()), user_id=user_id, issuer=issuer, kind=kind,
                    subject=subject, created=now))
                _audit(conn, audit, users_mod._user(row))
            return users_mod._user(row)
        except IntegrityError:
            linked = find(store, issuer, kind, subject)
            if linked is not None:  # another process linked this person just now
                return linked
            continue  # the username was taken: try the next
    raise users_mod.UserError("No free username for this person.", "username")


def set_role(store: Store, user: users_mod.User, role: str, *, now: dt.datetime,
             audit: users_mod.UserAudit | None = None) -> users_mod.User:
    """The role the identity provider now gives the person (audited as a role change)."""
    if role == user.role:
        return user
    with engine_mod.writer(store.engine).begin() as conn:
        row = conn.execute(update(users).where(users.c.id == user.id).values(
            role=role, also_clinician=False, updated=now).returning(*users.c)).mappings().one()
        _audit(conn, audit, users_mod._user(row))
    return users_mod._user(row)


def _usernames(hint: str | None, issuer: str, subject: str) -> list[str]:
    """Usernames to try: the provider's preferred one (cleaned), then one made from a
    digest of the identity (always free in practice: 2^48 of them per prefix)."""
    candidates = []
    cleaned = re.sub(r"[^a-z0-9.\-_@]", "", (hint or "").strip().lower())[:48]
    if cleaned:
        candidates += [cleaned, f"{cleaned}-{_digest(issuer, subject)[:6]}"]
    candidates.append(f"sso-{_digest(issuer, subject)[:12]}")
    return candidates


def _digest(issuer: str, subject: str) -> str:
    return hashlib.sha256(f"{issuer}\n{subject}".encode("utf-8")).hexdigest()
