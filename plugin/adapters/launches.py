"""SMART launches, kept server-side: the pending authorization, then the EHR's tokens.

The browser only ever holds the launch's id, inside the signed session cookie. The
OAuth ``state`` and the PKCE verifier wait here until the callback, which may use them
once (``take``: a replayed or forged callback finds nothing). The tokens the EHR issues
are stored *sealed* (Fernet: AES-128-CBC + HMAC-SHA256) under a key derived from the
app's SECRET_KEY, so a copy of the database alone does not hand out access to the EHR.

``access_token`` gives a valid access token for a launch, refreshing it when it has run
out; two processes refreshing at once are settled by the row's ``version`` (the loser
reads the winner's token instead of spending the refresh token twice).
"""
from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, insert, select, update

from ..errors import NotFoundError, PluginError
from . import engine as engine_mod
from . import smart
from .smart import Token
from .store import Store
from .tables import exams, launches

__all__ = ["Launch", "LaunchError", "LaunchExpired", "LaunchTokens", "expire", "Sealer", "access_token", "activate", "attach_exam",
           "begin", "fail", "get", "purge", "take"]

#: Error texts are cut to this length (they come from the EHR's OAuth answers).
ERROR_LENGTH = 300


class LaunchError(PluginError):
    """The callback does not belong to a launch that is waiting for it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class LaunchExpired(LaunchError):
    """The callback came, but later than a sign-in may take."""


@dataclass(frozen=True)
class Launch:
    """A launch as stored, without its secrets."""

    id: str
    stage: str
    iss: str
    client_id: str
    redirect_uri: str
    token_endpoint: str
    launch: str | None
    nonce: str | None
    scope: str | None
    expires_at: dt.datetime | None
    ehr_patient: str | None
    ehr_encounter: str | None
    fhir_user: str | None
    patient_id: str | None
    exam_id: str | None
    error: str | None
    version: int
    created: dt.datetime


class Sealer:
    """Seals and opens token strings with a key derived from the app's secret."""

    def __init__(self, secret: str | bytes) -> None:
        material = secret.encode("utf-8") if isinstance(secret, str) else secret
        if not material:
            raise ValueError("sealing tokens needs a SECRET_KEY")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"posterior-thigh-exam smart tokens v1").derive(material)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, text: str | None) -> str | None:
        return None if text is None else self._fernet.encrypt(text.encode("utf-8")).decode()

    def open(self, sealed: str | None) -> str | None:
        if sealed is None:
            return None
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            return None  # sealed under another SECRET_KEY: as good as no token


def begin(store: Store, *, iss: str, client_id: str, redirect_uri: str,
          token_endpoint: str, oauth_state: str, code_verifier: str,
          launch: str | None, nonce: str | None = None) -> Launch:
    """Record a started authorization; its id goes into the session cookie."""
    now = _now()
    with engine_mod.writer(store.engine).begin() as conn:
        row = conn.execute(insert(launches).values(
            id=str(uuid.uuid4()), stage="authorizing", iss=iss, client_id=client_id,
            redirect_uri=redirect_uri, token_endpoint=token_endpoint,
            oauth_state=oauth_state, code_verifier=code_verifier, launch=launch,
            nonce=nonce, version=1, created=now, updated=now).returning(*launches.c)).one()
    return _launch(row)


def take(store: Store, launch_id: str | None, oauth_state: str, *,
         max_age_seconds: float) -> tuple[Launch, str]:
    """The launch waiting for this callback, and its PKCE verifier, used up: the state
    must match the one this browser started (its session's launch id), be unused, and
    be younger than ``max_age_seconds``."""
    if not launch_id or not oauth_state:
        raise LaunchError("This sign-in is not one this browser started, or it was "
                          "already used. Launch the exam again from the EHR.")
    oldest = _now() - dt.timedelta(seconds=max_age_seconds)
    with engine_mod.writer(store.engine).begin() as conn:
        row = conn.execute(select(launches).where(
            launches.c.id == _uuid(launch_id), launches.c.oauth_state == oauth_state,
            launches.c.stage == "authorizing")).first()
        if row is None:
            raise LaunchError("This sign-in is not one this browser started, or it was "
                              "already used. Launch the exam again from the EHR.")
        verifier = row.code_verifier
        taken = conn.execute(update(launches).where(
            launches.c.id == row.id, launches.c.version == row.version).values(
            oauth_state=None, code_verifier=None, version=row.version + 1,
            updated=_now())).rowcount
        if not taken:
            raise LaunchError("This sign-in was already used. Launch the exam again.")
    if row.created < oldest:
        fail(store, row.id, "the sign-in took too long")
        raise LaunchExpired("The sign-in took too long. Launch the exam again from the EHR.")
    return _launch(row), verifier


def activate(store: Store, launch_id: str, token: Token, sealer: Sealer, *,
             patient_id: str | None) -> Launch:
    """The EHR's token arrived: keep it (sealed) with its context."""
    return _set(store, launch_id, stage="active", error=None, patient_id=patient_id,
                **_token_values(token, sealer), ehr_patient=token.patient,
                ehr_encounter=token.encounter, fhir_user=token.fhir_user)


def attach_exam(store: Store, launch_id: str, exam_id: str) -> Launch:
    return _set(store, launch_id, exam_id=exam_id)


def fail(store: Store, launch_id: str, error: str) -> Launch:
    """The launch failed; keep why (the EHR's OAuth error or ours), drop any secret."""
    words = " ".join(str(error).split())[:ERROR_LENGTH]
    return _set(store, launch_id, stage="failed", error=words, oauth_state=None,
                code_verifier=None, access_token=None, refresh_token=None)


def get(store: Store, launch_id: str) -> Launch:
    with store.engine.connect() as conn:
        row = conn.execute(select(launches).where(launches.c.id == _uuid(launch_id))).first()
    if row is None:
        raise NotFoundError("no such launch")
    return _launch(row)


def access_token(store: Store, launch_id: str, sealer: Sealer,
                 refresher: Callable[[str], Token], *,
                 now: dt.datetime | None = None) -> str | None:
    """A valid access token of an active launch, refreshed through ``refresher`` (given
    the refresh token) when it has run out; None when there is none to be had (not
    active, expired without a refresh token, or sealed under another key).
    ``refresher`` raising (e.g. the EHR refused the refresh) propagates."""
    now = now or _now()
    with store.engine.connect() as conn:
        row = conn.execute(select(launches).where(launches.c.id == _uuid(launch_id))).first()
    if row is None or row.stage != "active":
        return None
    access = sealer.open(row.access_token)
    if access and not smart.expires_soon(row.expires_at, now):
        return access
    refresh_token = sealer.open(row.refresh_token)
    if not refresh_token:
        return None
    token = refresher(refresh_token)
    values = _token_values(token, sealer)
    if token.refresh_token is None:  # the EHR kept the old refresh token valid
        values["refresh_token"] = row.refresh_token
    with engine_mod.writer(store.engine).begin() as conn:
        won = conn.execute(update(launches).where(
            launches.c.id == row.id, launches.c.version == row.version).values(
            version=row.version + 1, updated=_now(), **values)).rowcount
    if won:
        return token.access_token
    # another process refreshed at the same moment: its token is as good as ours
    with store.engine.connect() as conn:
        latest = conn.execute(select(launches.c.access_token).where(
            launches.c.id == row.id)).scalar()
    return sealer.open(latest) or token.access_token


def expire(store: Store, launch_id: str) -> None:
    """The EHR refused the launch's access token: the next use refreshes it first."""
    _set(store, launch_id, expires_at=_now() - dt.timedelta(seconds=1))


class LaunchTokens:
    """The token a delivery goes with: the exam's own SMART launch token while the
    user's authorization lasts (refreshed when it has run out), else ``fallback``
    (backend services), else none.

    Only a launch from the EHR the delivery goes to (``base_url``) and still configured
    in ``clients`` (SMART_CLIENTS) is used: a token is never sent to another server.
    A refused refresh (the user's session at the EHR has ended) falls back quietly.
    """

    def __init__(self, store: Store, sealer: Sealer, clients: Mapping[str, Any],
                 base_url: str, *, timeout: float, fallback: Any = None) -> None:
        self._store, self._sealer, self._timeout = store, sealer, timeout
        self._clients = smart.clients_by_base(clients)
        self._base = smart.base_key(base_url)
        self._fallback = fallback
        self._used: dict[str, str] = {}  # job id -> launch id whose token it carried

    def __call__(self, job: Any) -> str | None:
        token = self._user_token(job)
        if token is not None:
            return token
        return self._fallback(job) if self._fallback is not None else None

    def forget(self, job: Any = None) -> None:
        """The EHR answered 401 to ``job``: expire whichever token it carried."""
        launch_id = self._used.pop(job.id, None) if job is not None else None
        if launch_id is not None:
            expire(self._store, launch_id)
        elif self._fallback is not None:
            self._fallback.forget(job)

    def _user_token(self, job: Any) -> str | None:
        with self._store.engine.connect() as conn:
            launch_id = conn.execute(select(exams.c.launch_id).where(
                exams.c.id == job.exam_id)).scalar()
        if launch_id is None:
            return None
        launch = get(self._store, launch_id)
        iss = smart.base_key(launch.iss)
        entry = self._clients.get(iss)
        if launch.stage != "active" or iss != self._base or entry is None:
            return None
        client = smart.client_from(entry)
        config = smart.Configuration(iss=launch.iss, token_endpoint=launch.token_endpoint)
        try:
            token = access_token(self._store, launch.id, self._sealer,
                                 lambda refresh_token: smart.refresh(
                                     config, client, refresh_token, timeout=self._timeout))
        except smart.SmartError:
            return None
        if token is not None:
            self._used[job.id] = launch.id
        return token


def purge(store: Store, *, older_than: dt.timedelta) -> int:
    """Forget launches that never completed, and finished ones past their use."""
    cutoff = _now() - older_than
    with engine_mod.writer(store.engine).begin() as conn:
        return conn.execute(delete(launches).where(
            launches.c.created < cutoff, launches.c.stage != "active")).rowcount


def _token_values(token: Token, sealer: Sealer) -> dict[str, Any]:
    return {"access_token": sealer.seal(token.access_token),
            "refresh_token": sealer.seal(token.refresh_token),
            "expires_at": token.expires_at, "scope": token.scope or None}


def _set(store: Store, launch_id: str, **values: Any) -> Launch:
    with engine_mod.writer(store.engine).begin() as conn:
        row = conn.execute(update(launches).where(launches.c.id == _uuid(launch_id)).values(
            version=launches.c.version + 1, updated=_now(), **values)
            .returning(*launches.c)).first()
    if row is None:
        raise NotFoundError("no such launch")
    return _launch(row)


def _launch(row: Any) -> Launch:
    values: Mapping[str, Any] = row._mapping
    return Launch(**{name: values[name] for name in Launch.__dataclass_fields__})


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise LaunchError("This sign-in is not one this browser started.") from None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
