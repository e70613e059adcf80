"""SMART App Launch 2.x: the EHR opens the exam for the patient in front of the clinician.

``GET /launch?iss=…&launch=…`` (EHR launch) or ``GET /launch?iss=…`` (standalone; the
EHR asks the user to pick the patient) → the EHR's ``smart-configuration`` → its
authorize endpoint (PKCE S256, ``state``, ``aud``) → ``GET /launch/callback`` → the code
exchanged for a token with the patient (and encounter) context → the Patient read from
the EHR, linked to a local patient, and an exam begun for it, prefilled through the
same $populate work the FHIR API offers (age from birthDate) → the exam's first page.

Only EHRs listed in ``SMART_CLIENTS`` are contacted: a launch naming another ``iss`` is
refused before any request leaves, so the endpoint cannot be used to make the server
fetch arbitrary URLs. Tokens stay server-side (``adapters.launches``, sealed); the
session cookie holds only the ids of this browser's pending launches.

The launch also signs the person in (``web/launch_signin``): the EHR's id token says
who they are, so a clinician launching from the chart never meets the password form.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, session

from ..adapters import launches, smart, store as store_mod
from ..errors import InputError, PluginError
from ..record import exams
from . import exam as exam_views, launch_signin
from .current import store as _store

bp = Blueprint("smart", __name__)

#: Session key holding the ids of this browser's launches still waiting for a callback.
PENDING = "smart_launches"
#: The most pending launches one browser may have at once (a launch per open tab).
MAX_PENDING = 5
#: A FHIR resource id (R4 ``id`` datatype).
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: Launches that never became active are deleted after this long.
STALE = dt.timedelta(days=1)


@bp.get("/launch")
def launch() -> Any:
    """Start an EHR launch (``iss`` + ``launch``) or a standalone one (``iss`` only)."""
    clients = _clients()
    iss = smart.base_key(request.args.get("iss") or "")
    launch_id = request.args.get("launch")
    if not iss:
        if launch_id is not None:
            return _failed("The EHR did not say which FHIR server it is (no iss).", 400)
        if len(clients) != 1:
            return render_template("exam/launch_choose.html", ehrs=sorted(clients)), \
                200 if clients else 404
        iss = next(iter(clients))
    entry = clients.get(iss)
    if entry is None:
        return _failed("This EHR is not set up to launch the exam. Ask your administrator "
                       "to add it to SMART_CLIENTS.", 400)
    try:
        client = smart.client_from(entry, default_scope=str(current_app.config["SMART_SCOPE"]))
        config = smart.discover(iss, timeout=_timeout())
        authorization = smart.authorization(
            config, client, redirect_uri=_redirect_uri(), launch=launch_id,
            scope=client.scope if launch_id is not None else _standalone(client.scope))
    except ValueError as error:
        current_app.logger.error("SMART client setting for an EHR is unusable: %s", error)
        return _failed("This EHR's settings are unusable; ask your administrator.", 500)
    except smart.SmartError as error:
        return _failed(f"The EHR could not be reached to sign in: {error}.", 502)
    # housekeeping: launches that never completed (or failed) are of no use after a day
    launches.purge(_store(), older_than=STALE)
    started = launches.begin(_store(), iss=iss, client_id=client.client_id,
                             redirect_uri=_redirect_uri(),
                             token_endpoint=config.token_endpoint,
                             oauth_state=authorization.state,
                             code_verifier=authorization.code_verifier, launch=launch_id,
                             nonce=authorization.nonce)
    session[PENDING] = ([*session.get(PENDING, []), started.id])[-MAX_PENDING:]
    return redirect(authorization.url, 302)


@bp.get("/launch/callback")
def callback() -> Any:
    """The EHR's answer: a code to exchange, or an OAuth error to show in words."""
    state = request.args.get("state") or ""
    pending = list(session.get(PENDING, []))
    try:
        started, verifier = _take(pending, state)
    except launches.LaunchError as error:
        return _failed(error.message, 400)
    session[PENDING] = [p for p in pending if p != started.id]
    if request.args.get("error"):
        reason = _oauth_error(request.args)
        launches.fail(_store(), started.id, reason)
        return _failed(f"The EHR did not let the exam open: {reason}.", 403)
    code = request.args.get("code")
    if not code:
        launches.fail(_store(), started.id, "no code in the EHR's answer")
        return _failed("The EHR's answer had no authorization code.", 400)
    try:
        exam = _open_exam(started, code, verifier)
    except launch_signin.LaunchSignInRefused as error:
        launches.fail(_store(), started.id, error.message)
        return _failed(error.message, 403)
    except (smart.SmartError, InputError, ValueError) as error:
        words = error.message if isinstance(error, PluginError) else str(error)
        launches.fail(_store(), started.id, words)
        return _failed(f"The exam could not be opened from the EHR: {words}", 502)
    return redirect(exam_views.first_page(exam), 303)


def _open_exam(started: launches.Launch, code: str, verifier: str) -> store_mod.ExamRecord:
    """Exchange the code, read the patient, link them, begin (or resume) their exam."""
    entry = _clients().get(started.iss)
    if entry is None:
        raise smart.SmartError("this EHR is no longer set up to launch the exam")
    client = smart.client_from(entry)
    config = smart.Configuration(iss=started.iss, token_endpoint=started.token_endpoint)
    token = smart.exchange(config, client, code=code, redirect_uri=started.redirect_uri,
                           code_verifier=verifier, timeout=_timeout())
    # who launched: the id token, verified, signs them in (a new session) before anything
    # is written, so the audit trail and the exam name them
    token = launch_signin.sign_in(started, client, token, keep=(PENDING,))
    if not token.patient:
        raise smart.SmartError("the EHR gave no patient context; open the exam from a "
                               "patient's chart")
    # the ids become URL paths and references: only what FHIR allows for an id
    if not FHIR_ID.fullmatch(token.patient) or \
            (token.encounter is not None and not FHIR_ID.fullmatch(token.encounter)):
        raise smart.SmartError("the EHR's patient or encounter context is not a FHIR id")
    patient = smart.read(started.iss, f"Patient/{token.patient}", token.access_token,
                         timeout=_timeout())
    if patient.get("resourceType") != "Patient" or patient.get("id") != token.patient:
        raise smart.SmartError("the EHR answered with another resource than the patient")
    record = exams.link_ehr_patient(_store(), started.iss, token.patient, patient,
                                    by=exam_views.requester())
    active = launches.activate(_store(), started.id, token, _sealer(), patient_id=record.id)
    encounter = {"reference": f"Encounter/{token.encounter}"} if token.encounter else None
    exam = exam_views.begin_exam(record, encounter=encounter, launch_id=active.id)
    launches.attach_exam(_store(), active.id, exam.id)
    return exam


def _take(pending: list[str], state: str) -> tuple[launches.Launch, str]:
    """The pending launch of this browser that ``state`` belongs to (used up)."""
    max_age = float(current_app.config["SMART_AUTHORIZE_SECONDS"])
    for launch_id in reversed(pending):
        try:
            return launches.take(_store(), launch_id, state, max_age_seconds=max_age)
        except launches.LaunchExpired:
            raise
        except launches.LaunchError:
            continue  # another tab's launch: try the next
    raise launches.LaunchError(
        "This sign-in was not started in this browser, was already used, or the session "
        "ended. Launch the exam again from the EHR.")


def _oauth_error(args: Mapping[str, str]) -> str:
    """The EHR's OAuth error in words (short, one line: it is shown and stored)."""
    error = " ".join(str(args.get("error", "")).split())[:80]
    known = {"access_denied": "access was denied",
             "invalid_scope": "the requested access is not allowed for this app",
             "unauthorized_client": "this app is not allowed to sign in this way",
             "invalid_request": "the sign-in request was refused",
             "server_error": "the EHR's sign-in had an error",
             "temporarily_unavailable": "the EHR's sign-in is temporarily unavailable"}
    words = known.get(error, error or "an unnamed error")
    description = " ".join(str(args.get("error_description", "")).split())[:200]
    return f"{words} ({description})" if description else words


def _failed(message: str, status: int) -> tuple[str, int]:
    return render_template("exam/launch_error.html", message=message), status


def _clients() -> dict[str, Mapping[str, Any]]:
    configured = current_app.config.get("SMART_CLIENTS") or {}
    return smart.clients_by_base(configured)


def _standalone(scope: str) -> str:
    """A standalone launch has no ``launch`` to name the context: it asks the EHR to
    let the user pick the patient (``launch/patient``) instead."""
    words = [w for w in scope.split() if w != "launch"]
    return " ".join(["launch/patient", *[w for w in words if w != "launch/patient"]])


def launch_url() -> str:
    """The public launch URL: ``SMART_LAUNCH_URL``, else this host's ``/launch`` (what
    the EHR registers, and what the CDS Hooks card links to)."""
    configured = current_app.config.get("SMART_LAUNCH_URL")
    return str(configured or request.url_root.rstrip("/") + "/launch").rstrip("/")


def _redirect_uri() -> str:
    return launch_url() + "/callback"


def _timeout() -> float:
    return float(current_app.config["SMART_TIMEOUT_SECONDS"])


def _sealer() -> launches.Sealer:
    return launches.Sealer(current_app.secret_key or "")


