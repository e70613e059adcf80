"""Every setting in one place, and the order they are read in.

Defaults live in ``DEFAULTS``; ``create_app`` then overlays the instance folder's
``config.py`` and ``PLUGIN_*`` environment variables (``PLUGIN_MAX_CONTENT_LENGTH=...``),
or, in tests, the ``test_config`` mapping. Nothing else in the package reads the
environment, and importing this module does no I/O.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The checkout that holds ``plugin/``, ``questionnaires/`` and ``mappings/``. The data
#: folders sit beside the package (not inside it) so clinicians can review them as files.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULTS: dict[str, object] = {
    # Where the knowledge lives; every file is loaded and checked once, at start-up.
    "QUESTIONNAIRES_DIR": str(PROJECT_ROOT / "questionnaires"),
    "MAPPINGS_DIR": str(PROJECT_ROOT / "mappings"),
    # Request bodies above this many bytes are refused with an OperationOutcome (413).
    # A complete exam as a QuestionnaireResponse is ~60 KB; 1 MiB leaves ample room.
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    # Longest request URL (path and query) and longest header line accepted: longer is a
    # 414 / 431 (an OperationOutcome under /fhir). gunicorn's own limits are set above
    # these (plugin/web/serving.py), so the app, not gunicorn, answers.
    "MAX_URL_LENGTH": 4096,
    "MAX_HEADER_LENGTH": 20 * 1024,
    # Public base URL of the FHIR API, used in the CapabilityStatement. Empty: taken
    # from the request (correct behind a proxy only with ProxyFix-style headers).
    "FHIR_BASE_URL": "",
    # Keep JSON responses in the order FHIR readers expect (resourceType first).
    "JSON_SORT_KEYS": False,
    # Where exams are stored (SQLAlchemy URL). Empty: an SQLite file in the instance
    # folder. For several app processes, PostgreSQL: postgresql+psycopg://user@host/db.
    "DATABASE_URL": "",
    # Migrate the database to the newest schema when the app starts (Alembic; several
    # processes starting at once take turns), so a fresh checkout serves with one
    # command. Turn off where deployments run `python -m plugin db upgrade` themselves.
    "DATABASE_UPGRADE": True,
    # Add a Server-Timing header (W3C) to a signature's response naming how long the
    # password re-entry's Argon2id check took, so a benchmark can tell the hash's cost
    # from the rest of signing. Off: a deployment has no use for it.
    "SERVER_TIMING": False,
    # Signs the session cookie (CSRF tokens). Empty: a random key kept in the instance
    # folder (file secret_key, mode 0600), so restarts do not log tablets out.
    "SECRET_KEY": "",
    # Signs every exam signature (a detached JWS in Provenance.signature): a PEM private
    # key, RSA (>= 2048 bits) or EC P-256. Empty: an EC P-256 key made once and kept in
    # the instance folder (file signing_key.pem, mode 0600). Back it up with the database.
    "SIGNING_KEY": "",
    # Session cookie flags: never readable from script, sent only over HTTPS, and not
    # on cross-site requests.
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SECURE": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # A CSRF token lives as long as the session, not one hour: an exam page stays open
    # beside the couch for as long as the exam takes, and its autosave must keep working.
    "WTF_CSRF_TIME_LIMIT": None,
    # A sign-in ends after this many minutes without a request (autosaves count) ...
    "SESSION_IDLE_MINUTES": 15,
    # ... and this many hours after it began, however active (OWASP ASVS 3.3.2).
    "SESSION_LIFETIME_HOURS": 12,
    # Identifier.system for patient identifiers typed on the tablet (standalone mode):
    # your organisation's MRN namespace. Empty: identifiers are stored without a system.
    "PATIENT_IDENTIFIER_SYSTEM": "",
    # CDS Hooks: the EHRs (CDS clients) allowed to call the services. Each entry maps a
    # JWT issuer ("iss") to where its public keys come from: {"jwks": {...}} inline, or
    # {"jku": "https://ehr.example/jwks.json"}: the only jku accepted for that issuer,
    # and the only URL its keys are fetched from (https; http only to this machine),
    # cached CDS_HOOKS_JWKS_CACHE_SECONDS. With both, the inline keys are used.
    # Data a client did not prefetch is fetched from the fhirServer its call names, with
    # its fhirAuthorization token: only from https servers, unless the entry lists its
    # servers, "fhir_servers": ["https://ehr.example/fhir", "http://127.0.0.1:8080/fhir"]
    # (then only from those: the fhirServer must be one of them or a path under one).
    # Empty: every service call is refused (401), as it carries patient data.
    "CDS_HOOKS_CLIENTS": {},
    # The public base of the CDS services (the discovery URL, .../cds-services): a CDS
    # client's JWT must name the exact service URL under it as its audience. Empty:
    # taken from the request URL (correct only behind a proxy that preserves the host).
    "CDS_HOOKS_AUDIENCE": "",
    # How long a CDS client's keys fetched from its allow-listed "jku" are kept (s), and
    # how long fetching them, or data the client did not prefetch from its fhirServer,
    # may take (s): a CDS service should answer within about half a second.
    "CDS_HOOKS_JWKS_CACHE_SECONDS": 300,
    "CDS_HOOKS_FETCH_TIMEOUT_SECONDS": 3,
    # API access for integrators (SMART Backend Services, `python -m plugin clients`):
    # how long an access token lives (s; at most 300, as SMART asks), the token
    # endpoint's public URL (what a client assertion's "aud" must be; empty:
    # <this host>/auth/token, correct only behind a proxy that preserves the host), and
    # for clients registered with --jwks-url: how long their keys are kept (s; less when
    # the key server's Cache-Control says so) and how long fetching them may take (s).
    "API_TOKEN_SECONDS": 300,
    "API_TOKEN_URL": "",
    "API_JWKS_CACHE_SECONDS": 300,
    "API_JWKS_FETCH_TIMEOUT_SECONDS": 3,
    # EHR origins allowed to show the app inside their own page (an iframe, as some
    # EHRs embed SMART apps), e.g. ["https://ehr.example.org"]. Empty: no framing at all.
    # When set, the session cookie becomes SameSite=None (still Secure and HttpOnly;
    # CSRF tokens still guard every form), or it would not reach the framed pages.
    "FRAME_ANCESTORS": [],
    # SMART App Launch: the EHRs this app may be launched from, keyed by their FHIR base
    # (the launch's "iss"). Each entry: {"client_id": "...", optionally "scope": "..."
    # (default SMART_SCOPE), and for a confidential asymmetric client "jwk": {private
    # JWK with "kid", RS384 or ES384} or "jwk_file": "path"; without a key it is a public
    # client (PKCE protects the code)}. A launch naming any other iss is refused: the
    # app never contacts a server it was not configured for.
    "SMART_CLIENTS": {},
    # What an EHR launch asks for (SMART v2 scopes): the launch context, who the user
    # is, the patient and encounter to prefill from, and what write-back creates.
    # Many EHRs grant only what the app was registered for; adjust per EHR.
    "SMART_SCOPE": ("launch openid fhirUser online_access patient/Patient.r "
                    "user/Practitioner.r patient/Encounter.r user/QuestionnaireResponse.c "
                    "user/Observation.c user/Condition.c user/ServiceRequest.c "
                    "user/DocumentReference.c user/Provenance.c user/Device.c"),
    # The public URL of the launch endpoint (registered with the EHR; the CDS Hooks card
    # links to it). Empty: <this host>/launch.
    "SMART_LAUNCH_URL": "",
    # How long a call to the EHR's authorization server or FHIR API during a launch may
    # take (s), and how long a started authorization stays valid (s).
    "SMART_TIMEOUT_SECONDS": 10,
    "SMART_AUTHORIZE_SECONDS": 600,
    # Sign-in by EHR launch: a person launching for the first time (matched on the id
    # token's issuer + fhirUser) becomes a user with this role ("" : refused instead).
    "SMART_LAUNCH_ROLE": "clinician",
    # Single sign-on with hospital OpenID Connect providers: a list of {"name": "stmary"
    # (in URLs), "label": "St Mary's" (on the sign-in page), "issuer": "https://…",
    # "client_id": "…", and "client_secret": "…" or "private_key_jwt": "path to a
    # private JWK (RS384/ES384 with kid)"; "role_claim": "roles", "roles": {claim value:
    # role}; "create_users": false (true: a first sign-in creates the user);
    # "step_up": "both" | "prompt" | "max_age" | "none" (how a signature asks the
    # provider for the password again; "none": the local password is asked instead)}.
    # Endpoints come from {issuer}/.well-known/openid-configuration.
    "OIDC_PROVIDERS": [],
    # SMART Backend Services, for deliveries without a valid user token: {"client_id":
    # "...", "jwk": {private JWK} or "jwk_file": "path", optionally "scope": "system/..."}.
    # The token endpoint comes from EHR_FHIR_BASE_URL/.well-known/smart-configuration.
    # Empty: deliveries go without a token unless the exam's launch token is valid.
    "EHR_BACKEND_CLIENT": {},
    # Delivery of signed exams to the EHR (python -m plugin deliver). The FHIR base URL
    # the transaction Bundles are POSTed to; empty: delivery is off (nothing is queued
    # at sign-off, and the worker says so and exits 2).
    "EHR_FHIR_BASE_URL": "",
    # How records are sent, by what the EHR accepts: "auto" (read from the EHR's
    # CapabilityStatement, GET [base]/metadata, kept 5 minutes per worker: the ways below
    # that the EHR can take without a retry ever duplicating anything, in order; a refusal
    # of the request's shape moves on to the next way, remembered per EHR),
    # "transaction" (the Bundle as transactions), "individual" (entry by entry, each a
    # conditional create; types the EHR cannot create left out) or "document-only"
    # (only the DocumentReferences and the Provenance: many EHRs refuse exam Observations).
    "EHR_PROFILE": "auto",
    # The most entries one transaction may hold (servers limit conditional transactions:
    # Medplum to 8); a larger record goes in dependency-ordered steps. 0: learned from
    # the EHR's first refusal that says so, and kept per EHR in the database.
    "EHR_TRANSACTION_MAX_ENTRIES": 0,
    # Attempts before a delivery is given up ("could not be sent" on the record page).
    "DELIVERY_MAX_ATTEMPTS": 8,
    # The first retry waits about this long (s); each later one twice as long, jittered.
    "DELIVERY_BACKOFF_SECONDS": 30,
    # A worker holds a claimed delivery this long (s); if it dies, another takes over
    # after it. Keep it well above DELIVERY_TIMEOUT_SECONDS.
    "DELIVERY_LEASE_SECONDS": 120,
    # How long one POST to the EHR may take (s) before it counts as failed (retried).
    "DELIVERY_TIMEOUT_SECONDS": 20,
    # The clinic's time zone (an IANA name: Europe/London, America/New_York), checked at
    # start-up. Every time people read is shown in it, with its abbreviation: the record
    # page and its revisions, the patient's exam list, the clinician summary (signing
    # time, exam date) and the handout's date. Stored times stay UTC.
    "TIME_ZONE": "UTC",
    # The clinic's contact line printed on every patient handout (who to call with a
    # question), e.g. "Physiotherapy clinic, 01234 567890, Monday to Friday 8am to 6pm".
    # Empty: the handout says to contact the clinic that examined them.
    "CLINIC_CONTACT": "",
    # Signed records' documents (summary, handout, large print) are rendered once, after
    # the signature, outside the request workers: `serve` runs one renderer process
    # beside them (False: none; then `python -m plugin documents --pending` or the
    # `deliver` worker renders them). A renderer that dies mid-render loses its claim
    # after DOCUMENTS_LEASE_SECONDS and the render is picked up again.
    "DOCUMENTS_RENDERER": True,
    "DOCUMENTS_LEASE_SECONDS": 120,
    "DOCUMENTS_POLL_SECONDS": 0.5,
    # Timing thresholds of the decision rules (mappings/decision/*.json name them). Each
    # is a local policy choice within the range its evidence allows (shared/clinical.md
    # section 5); override one with e.g. PLUGIN_DECISION_THRESHOLDS__PHT_LOADING_TRIAL_WEEKS=16.
    "DECISION_THRESHOLDS": {
        # Lumbar MRI for radicular pain only after it persists this long, and only in an
        # injection/surgery candidate: 4-6 weeks (ACP/APS Chou 2007 rec. 4 [V]; RCGP [S]).
        "MRI_RADICULAR_PERSISTENCE_WEEKS": 6,
        # Conservative care tried before injection consultations (epidural, piriformis,
        # SIJ): "several weeks" (NICE NG59 [S]; Fishman 2002 [V]; Prather 2020 [V]).
        "CONSERVATIVE_CARE_WEEKS": 6,
        # Structured tendon loading before imaging/injection for PHT: about 3 months
        # (range 3-6; UNVERIFIED, seed "several months"; Goom 2016 [S]).
        "PHT_LOADING_TRIAL_WEEKS": 12,
        # Care before a surgical opinion for PHT: 6 months (UNVERIFIED for PHT; chronic
        # incomplete avulsions were operated after 6 months, Kayani/Haddad [V]).
        "PHT_SURGICAL_OPINION_WEEKS": 26,
        # Radicular pain before a spine-surgeon referral after failed care: 6-12 weeks
        # (NICE NG59 decompression [S]; Liu 2023 [S]).
        "SURGERY_RADICULAR_WEEKS": 12,
        # Complete proximal avulsion repair: target 4 weeks, upper bound 6 weeks after
        # injury (Buckwalter 2017 [V]; Bone Joint Open 2022 [V]).
        "AVULSION_REPAIR_TARGET_WEEKS": 4,
        "AVULSION_REPAIR_WINDOW_WEEKS": 6,
        # Emergency MRI for suspected cauda equina syndrome: within 4 hours of request
        # (GIRFT national pathway via BMJ Best Practice [V]).
        "CES_MRI_TARGET_HOURS": 4,
    },
}


def check(config: Mapping[str, Any]) -> None:
    """Stop start-up on a setting that would only fail later, in front of a patient:
    ``TIME_ZONE`` must be an IANA name (a typo would print every time in no zone)."""
    from .core import datetimes
    from .errors import ConfigError

    try:
        datetimes.zone(config.get("TIME_ZONE"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(str(exc), original_error=exc) from exc
    if not isinstance(config.get("CLINIC_CONTACT"), str):
        raise ConfigError("CLINIC_CONTACT must be text (the clinic's contact line)")
