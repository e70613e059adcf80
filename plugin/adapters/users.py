"""The people who sign in: their accounts, password hashes and the lock-out every
process shares.

Passwords are hashed with Argon2id (argon2-cffi's RFC 9106 low-memory profile) and
checked against the policy in ``core/passwords`` whenever one is set. Sign-in
(``authenticate``) gives one answer for an unknown user, a disabled one, a locked one
and a wrong password, and does the same work for each (an unknown username verifies a
dummy hash), so neither the message nor the time tells which usernames exist. Five
failures in a row lock the account for 15 minutes, counted in the database so every
gunicorn worker and replica sees them, and a lock ends the account's open sessions;
failures per network address are counted too
(``address_throttled``), so one address cannot try many usernames quickly.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..core import audit_events, passwords
from ..errors import PluginError
from . import engine as engine_mod, hashing
from .store import Store, _audit
from .tables import ROLES, login_failures, sessions, users

#: Failures in a row that lock an account, and for how long.
MAX_FAILURES = 5
LOCK_MINUTES = 15
#: Failed sign-ins from one network address within the window before it must wait.
ADDRESS_FAILURES = 20
ADDRESS_WINDOW_MINUTES = 15
USERNAME_LENGTH = 64
NAME_LENGTH = 200

#: The hash of an account without a local password (it signs in with a hospital identity
#: provider or by EHR launch): no Argon2 hash has this form, so no password matches it.
NO_PASSWORD = "!"

_hasher = PasswordHasher()  # argon2id, t=3, m=64 MiB, p=4 (RFC 9106 low-memory)
_DUMMY = _hasher.hash("a password no account has, verified for unknown usernames")


class UserError(PluginError):
    """A user cannot be added or changed as asked; the message says why."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class User:
    """An account as the service uses it (never with its hash)."""

    id: str
    username: str
    display_name: str
    role: str
    also_clinician: bool
    identifier_system: str | None
    identifier_value: str | None
    active: bool
    locked_until: dt.datetime | None
    #: False for an account that signs in only elsewhere (``NO_PASSWORD``)
    has_password: bool = True

    @property
    def roles(self) -> frozenset[str]:
        """What the user may do: their role, plus ``clinician`` for an admin who signs."""
        return frozenset({self.role, *(("clinician",) if self.also_clinician else ())})

    @property
    def identifier(self) -> dict[str, str] | None:
        """The Practitioner's identifier as FHIR spells it, if the user has one."""
        if not self.identifier_system or not self.identifier_value:
            return None
        return {"system": self.identifier_system, "value": self.identifier_value}

    @property
    def practitioner_reference(self) -> str:
        """The user as the record names them (QuestionnaireResponse.author, Provenance)."""
        return f"Practitioner/{self.id}"


#: A user administration's audit: given the account as written, its AuditEvents, appended
#: in the change's own transaction (``Store``'s ``audit``: a failed append undoes it).
UserAudit = Callable[["User"], Sequence[Mapping[str, Any]]]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_username(username: str) -> str:
    """A username as stored: trimmed, lower-case, 1-64 of letters, digits, ``.-_@``."""
    name = (username or "").strip().lower()
    if not name or len(name) > USERNAME_LENGTH or \
            not all(c.isalnum() or c in ".-_@" for c in name) or not name.isascii():
        raise UserError(f"A username is 1-{USERNAME_LENGTH} letters, digits, '.', '-', "
                        "'_' or '@'.", "username")
    return name


def parse_identifier(value: str | None) -> tuple[str | None, str | None]:
    """``SYSTEM|VALUE`` (e.g. ``http://hl7.org/fhir/sid/us-npi|1234567893``) or nothing."""
    if not value:
        return None, None
    system, bar, code = value.partition("|")
    if not bar or not system.strip() or not code.strip() or "|" in code:
        raise UserError("The identifier is SYSTEM|VALUE, e.g. "
                        "http://hl7.org/fhir/sid/us-npi|1234567893.", "identifier")
    return system.strip(), code.strip()


def add(store: Store, username: str, *, display_name: str, role: str, password: str,
        also_clinician: bool = False, identifier: str | None = None,
        now: dt.datetime, audit: UserAudit | None = None) -> User:
    """A new active account; refused (UserError) on a taken username, an unknown role,
    a blank name or a password the policy refuses."""
    name = check_username(username)
    display = (display_name or "").strip()
    if not display or len(display) > NAME_LENGTH:
        raise UserError(f"Enter the person's name (at most {NAME_LENGTH} characters).",
                        "name")
    if role not in ROLES:
        raise UserError(f"The role is one of {', '.join(ROLES)}.", "role")
    if also_clinician and role != "admin":
        raise UserError("Only an admin may also hold the clinician role.", "role")
    system, value = parse_identifier(identifier)
    _check_password(password, name)
    row = {"id": str(uuid.uuid4()), "username": name, "display_name": display, "role": role,
           "also_clinician": also_clinician, "identifier_system": system,
           "identifier_value": value, "password_hash": hash_password(password),
           "active": True, "failed_attempts": 0, "locked_until": None, "created": now,
           "updated": now}
    try:
        with engine_mod.writer(store.engine).begin() as conn:
            conn.execute(insert(users).values(**row))
            _audit(conn, audit, _user(row))
    except IntegrityError:
        raise UserError(f"The username {name!r} is taken.", "username") from None
    return _user(row)


def count(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def all_users(store: Store) -> list[User]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(users).order_by(users.c.username)).mappings().all()
    return [_user(r) for r in rows]


def get(store: Store, user_id: str) -> User | None:
    try:
        key = str(uuid.UUID(str(user_id)))
    except ValueError:
        return None
    with store.engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.id == key)).mappings().first()
    return _user(row) if row else None


def by_username(store: Store, username: str) -> User | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(users).where(
            users.c.username == (username or "").strip().lower())).mappings().first()
    return _user(row) if row else None


def disable(store: Store, username: str, *, now: dt.datetime,
            audit: UserAudit | None = None) -> User:
    """Switch an account off (its sessions are ended by the caller: ``sessions.end_all``)."""
    return _update(store, username, now, audit, active=False)


def set_password(store: Store, username: str, password: str, *, now: dt.datetime,
                 audit: UserAudit | None = None) -> User:
    """A new password (policy-checked); clears the lock-out."""
    user = by_username(store, username)
    if user is None:
        raise UserError(f"No user {username!r}.", "username")
    _check_password(password, user.username)
    return _update(store, user.username, now, audit, password_hash=hash_password(password),
                   failed_attempts=0, locked_until=None)


def authenticate(store: Store, username: str, password: str, *, now: dt.datetime,
                 address: str | None = None) -> User | None:
    """The user when ``password`` is theirs and the account is active and not locked;
    else None, after the same Argon2 work. A wrong password counts towards the lock."""
    with store.engine.connect() as conn:
        row = conn.execute(select(users).where(
            users.c.username == (username or "").strip().lower())).mappings().first()
    if row is None:
        _verify(_DUMMY, password)
        _fail_address(store, address, now)
        return None
    ok = _verify(row["password_hash"], password)
    locked = row["locked_until"] is not None and row["locked_until"] > now
    if ok and row["active"] and not locked:
        with engine_mod.writer(store.engine).begin() as conn:
            conn.execute(update(users).where(users.c.id == row["id"])
                         .values(failed_attempts=0, locked_until=None))
            if _hasher.check_needs_rehash(row["password_hash"]):
                conn.execute(update(users).where(users.c.id == row["id"])
                             .values(password_hash=hash_password(password)))
        return _user({**row, "failed_attempts": 0, "locked_until": None})
    if not ok and not locked and row["password_hash"] != NO_PASSWORD:
        _count_failure(store, row["id"], now, address)  # (no password: nothing to guess)
    _fail_address(store, address, now)
    return None


def verify_password(store: Store, user: User, password: str, *, now: dt.datetime,
                    address: str | None = None) -> bool:
    """Re-authentication (before a signature): the signed-in user's password again. A
    wrong one counts towards the lock like a failed sign-in (a guesser at an unlocked
    tablet gets five tries, then the account locks and its sessions end)."""
    with store.engine.connect() as conn:
        hashed = conn.execute(select(users.c.password_hash)
                              .where(users.c.id == user.id)).scalar_one_or_none()
    if hashed is not None and _verify(hashed, password):
        with engine_mod.writer(store.engine).begin() as conn:
            conn.execute(update(users).where(users.c.id == user.id).values(failed_attempts=0))
        return True
    if hashed is None or hashed == NO_PASSWORD:
        _verify(_DUMMY, password)
    else:
        _count_failure(store, user.id, now, address)
    return False


def address_throttled(store: Store, address: str | None, *, now: dt.datetime) -> bool:
    """Whether ``address`` failed too often lately (it waits until the window passes)."""
    if not address:
        return False
    since = now - dt.timedelta(minutes=ADDRESS_WINDOW_MINUTES)
    with store.engine.connect() as conn:
        failures = conn.execute(select(func.count()).select_from(login_failures).where(
            login_failures.c.address == address[:64],
            login_failures.c.at > since)).scalar_one()
    return int(failures) >= ADDRESS_FAILURES


def _verify(hashed: str, password: str) -> bool:
    if hashed == NO_PASSWORD:  # the same Argon2 work, and never a match
        _verify(_DUMMY, password)
        return False
    try:
        return hashing.run(_hasher.verify, hashed, password or "")
    except (VerificationError, InvalidHashError):
        return False


def _count_failure(store: Store, user_id: str, now: dt.datetime,
                   address: str | None = None) -> None:
    """One more failure, in one statement (two processes never lose a count); the
    fifth in a row locks the account, and the lock-out's AuditEvent (from ``address``)
    is appended in the same transaction."""
    with engine_mod.writer(store.engine).begin() as conn:
        attempts = conn.execute(update(users).where(users.c.id == user_id)
                                .values(failed_attempts=users.c.failed_attempts + 1)
                                .returning(users.c.failed_attempts)).scalar_one()
        if attempts >= MAX_FAILURES:  # locked: its open sessions end too, on every process
            until = now + dt.timedelta(minutes=LOCK_MINUTES)
            username = conn.execute(
                update(users).where(users.c.id == user_id)
                .values(failed_attempts=0, locked_until=until)
                .returning(users.c.username)).scalar_one()
            conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
            _audit(conn, lambda _: [audit_events.lockout(
                username=username, address=address, recorded=now, until=until)], None)


def _fail_address(store: Store, address: str | None, now: dt.datetime) -> None:
    if not address:
        return
    with engine_mod.writer(store.engine).begin() as conn:
        conn.execute(delete(login_failures).where(
            login_failures.c.at < now - dt.timedelta(minutes=ADDRESS_WINDOW_MINUTES)))
        conn.execute(insert(login_failures).values(address=address[:64], at=now))


def _check_password(password: str, username: str) -> None:
    try:
        passwords.check(password or "", username)
    except passwords.PasswordRefused as exc:
        raise UserError(str(exc), "password") from None


def _update(store: Store, username: str, now: dt.datetime, audit: UserAudit | None,
            **values: object) -> User:
    name = (username or "").strip().lower()
    with engine_mod.writer(store.engine).begin() as conn:
        row = conn.execute(update(users).where(users.c.username == name)
                           .values(updated=now, **values).returning(*users.c)).mappings().first()
        if row is None:
            raise UserError(f"No user {username!r}.", "username")
        _audit(conn, audit, _user(row))
    return _user(row)


def from_row(row: Any) -> User:
    """The User of a row holding the ``users`` table's columns (e.g. a join's)."""
    return _user(row)


def _user(row: Sequence[object] | dict[str, object] | object) -> User:
    get_ = row.__getitem__  # type: ignore[attr-defined]
    return User(id=str(get_("id")), username=get_("username"), display_name=get_("display_name"),
                role=get_("role"), also_clinician=bool(get_("also_clinician")),
                identifier_system=get_("identifier_system"),
                identifier_value=get_("identifier_value"), active=bool(get_("active")),
                locked_until=get_("locked_until"),
                has_password=_has_password(row))


def _has_password(row: object) -> bool:
    try:
        return row["password_hash"] != NO_PASSWORD  # type: ignore[index]
    except (KeyError, TypeError, IndexError):
        return True
