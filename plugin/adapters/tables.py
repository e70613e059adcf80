"""The exam store's tables, defined once: the Store queries them, and a test compares
them with what the Alembic migrations build, so the two can never drift apart.

Ten tables: ``patients`` (linked to the EHR's Patient when launched from it);
``exams`` (one row per exam holding its working answers and
its single draft, with a ``version`` that is the ETag); ``revisions`` (one row per
signature, never updated, so the history of a signed record stays as it was signed);
``observations`` and ``observation_codes`` (each signed revision's Observations as
served, with their codes, for search); ``outbox`` (one row per signed revision to
deliver to the EHR: the transaction Bundle,
written in the signature's own transaction, its delivery state and what of it reached
the EHR); ``ehr_servers`` (what deliveries learned of each EHR); ``launches``
(one row per SMART launch: the OAuth state while authorizing, then the EHR's tokens,
sealed, and its patient and encounter: only the row's id travels in the session
cookie); ``cds_jtis`` (the JWT ids CDS clients and API clients have used, until they
expire, so a replayed call or assertion is refused by every process); ``audit_events``
(the audit trail, append-only).

Identity: ``users`` (one row per person who signs in, with an Argon2id hash and the
lock-out state every process shares); ``sessions`` (server-side sign-ins, keyed by the
SHA-256 of the cookie's random token, so deleting a row signs that tablet out on every
process); ``setup_tokens`` (the one-time first-account link, hashed);
``login_failures`` (failed sign-ins per network address, for the address throttle);
``identities`` (a user's identity at a hospital identity provider or an EHR: issuer and
subject, which single sign-on and sign-in by EHR launch match on).

API access (SMART Backend Services): ``api_clients`` (the integrators registered with
``python -m plugin clients add``: their public keys or JWKS URL and the scopes they may
get); ``api_tokens`` (the access tokens issued, keyed by the SHA-256 of the token, so a
copy of the table hands out no access). The JWT ids of their client assertions share
``cds_jtis`` (``adapters.replay``: one replay memory per issuer, whoever the issuer is).

Outcome measures: ``prom_responses`` (the PROMs added to an exam, answered on the tablet,
locked with the exam's signature); a session in patient mode names its PROM
(``sessions.patient_prom_id``).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (JSON, Boolean, CheckConstraint, Column, DateTime, Dialect, ForeignKey,
                        ForeignKeyConstraint, Index, Integer, LargeBinary, MetaData, String,
                        Table, Text, TypeDecorator, UniqueConstraint, Uuid)
from sqlalchemy.dialects.postgresql import JSONB

STATES = ("draft", "signed", "amending")
#: Delivery states of an outbox row: waiting (pending), claimed by a worker under a lease
#: (in-flight), accepted by the EHR (delivered), given up (dead), waiting for a person to
#: confirm the EHR's patient (held).
DELIVERY_STATES = ("pending", "in-flight", "delivered", "dead", "held")
#: States in which the working answers may still change.
EDITABLE = ("draft", "amending")

#: Deterministic constraint names, the same on every backend, so later migrations can
#: name what they alter.
metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime on every backend.

    PostgreSQL keeps the offset (timestamptz); SQLite keeps text without one, and would
    hand back naive datetimes that compare wrongly with aware ones. Values are converted
    to UTC on the way in (a naive one is refused: its zone is unknown) and come back
    aware in UTC from both.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None,
                           dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("a stored time needs a timezone")
        value = value.astimezone(dt.timezone.utc)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def json_type() -> Any:
    """JSON on SQLite, JSONB on PostgreSQL (validated, compact). ``None`` is SQL NULL,
    not the JSON ``null``, so "no draft" is testable with IS NULL."""
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _id() -> Uuid[str]:
    """uuid4 ids as strings in Python; native ``uuid`` on PostgreSQL, CHAR(32) on SQLite."""
    return Uuid(as_uuid=False)


patients = Table(
    "patients", metadata,
    Column("id", _id(), primary_key=True),
    Column("resource", json_type(), nullable=False),
    # Copied out of the resource for listing and ordering without parsing JSON.
    Column("family", Text),
    Column("given", Text),
    Column("birth_date", String(10)),  # FHIR date: YYYY, YYYY-MM or YYYY-MM-DD
    Column("identifier", Text),
    # family, given and identifier casefolded in Python: SQLite's lower() folds ASCII
    # only, and "Ólafsdóttir" must be found by "ólafs" on both backends.
    Column("search", Text, nullable=False),
    Column("created", UTCDateTime(), nullable=False),
    # The EHR's FHIR base and Patient id, for a patient brought in by a SMART launch:
    # launching again for the same EHR patient finds this row instead of a copy.
    Column("ehr_base", Text),
    Column("ehr_id", Text),
    Index(None, "family", "given"),
    Index(None, "ehr_base", "ehr_id", unique=True),
)

exams = Table(
    "exams", metadata,
    Column("id", _id(), primary_key=True),
    Column("patient_id", _id(), ForeignKey("patients.id"), nullable=False),
    Column("questionnaire", Text, nullable=False),  # canonical "url|version"
    Column("state", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("answers", json_type(), nullable=False),
    Column("draft", json_type()),
    Column("amend_reason", Text),
    Column("revisions", Integer, nullable=False),
    Column("created", UTCDateTime(), nullable=False),
    Column("updated", UTCDateTime(), nullable=False),
    # The EHR encounter the exam belongs to (a FHIR Reference), from the SMART launch.
    Column("encounter", json_type()),
    # The SMART launch the exam was started from: its user token delivers the record
    # while it is valid (backend services otherwise). No foreign key: see 0003.
    Column("launch_id", _id()),
    # The clinician's working impression and plan (decision/impression), saved like the
    # answers; copied into the revision at signing. NULL: none recorded (0011).
    Column("impression", json_type()),
    # The episode: the id of its initial exam (an initial exam's own id; a follow-up's
    # the initial exam it follows up). Back-filled so by 0013; written by every insert
    # (nullable, no foreign key: 0013 says why).
    Column("episode_id", _id()),
    CheckConstraint("state IN ('draft', 'signed', 'amending')", name="state"),
    CheckConstraint("version >= 1", name="version"),
    Index(None, "patient_id", "created"),
    Index(None, "episode_id", "created"),
)

revisions = Table(
    "revisions", metadata,
    Column("exam_id", _id(), ForeignKey("exams.id"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("answers", json_type(), nullable=False),
    Column("response", json_type(), nullable=False),
    Column("provenance", json_type(), nullable=False),
    Column("signed_by", Text, nullable=False),
    Column("signed_at", UTCDateTime(), nullable=False),
    Column("reason", Text),
    # The impression and plan as signed with this revision (0011).
    Column("impression", json_type()),
    CheckConstraint("status IN ('completed', 'amended')", name="status"),
)

#: What a signed revision's views and documents are made from, fixed in the signature's
#: own transaction (``record.freeze``): the assessment as shown at review, its numbered
#: sources, each document's HTML. Never updated but for the render bookkeeping:
#: ``rendered_at`` NULL means its documents are still to be rendered (a renderer claims
#: the row under a lease, ``claimed_by``/``claimed_until``, so a dead renderer's claim
#: runs out and another picks the render up again).
frozen_inputs = Table(
    "frozen_inputs", metadata,
    Column("exam_id", _id(), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("knowledge_version", Text, nullable=False),
    Column("inputs", json_type(), nullable=False),
    Column("created", UTCDateTime(), nullable=False),
    Column("rendered_at", UTCDateTime()),
    Column("render_attempts", Integer, nullable=False),
    Column("claimed_by", Text),
    Column("claimed_until", UTCDateTime()),
    Column("last_error", Text),
    ForeignKeyConstraint(["exam_id", "revision"], ["revisions.exam_id", "revisions.number"]),
    Index(None, "rendered_at", "claimed_until"),
)

#: Each signed revision's documents, rendered once from its frozen inputs and served
#: (and delivered) byte for byte: ``kind`` summary, handout or handout-large;
#: ``sha256`` (hex) is the strong ETag.
documents = Table(
    "documents", metadata,
    Column("exam_id", _id(), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("media_type", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created", UTCDateTime(), nullable=False),
    ForeignKeyConstraint(["exam_id", "revision"],
                         ["frozen_inputs.exam_id", "frozen_inputs.revision"]),
)

outbox = Table(
    "outbox", metadata,
    Column("id", _id(), primary_key=True),
    Column("exam_id", _id(), ForeignKey("exams.id"), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("payload", json_type(), nullable=False),  # the transaction Bundle
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    # HTTP status and OperationOutcome texts only: never the payload (it is PHI)
    Column("last_error", Text),
    Column("claimed_by", Text),
    Column("claimed_until", UTCDateTime()),
    Column("created", UTCDateTime(), nullable=False),
    Column("updated", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime()),
    # What reached the EHR: each entry's fullUrl -> the EHR's "<Type>/<id>" (a retry
    # sends only the rest); what was deliberately not sent: [[type, why], ...].
    Column("sent", json_type()),
    Column("unsent", json_type()),
    # A held delivery: the EHR's candidate patients (id, name, birth date) and, once a
    # person chose, the EHR Patient ("Patient/<id>") the record goes to.
    Column("candidates", json_type()),
    Column("ehr_patient", Text),
    CheckConstraint("state IN ('pending', 'in-flight', 'delivered', 'dead', 'held')",
                    name="state"),
    UniqueConstraint("exam_id", "revision"),
    Index(None, "state", "next_attempt_at"),
)

#: What deliveries learned of each EHR (keyed by its FHIR base, ``smart.base_key``): the
#: way of sending that last worked and the transaction entry limit its refusals named.
ehr_servers = Table(
    "ehr_servers", metadata,
    Column("base", Text, primary_key=True),
    Column("way", String(16)),
    Column("max_entries", Integer),
    Column("updated", UTCDateTime(), nullable=False),
)

#: A launch is ``authorizing`` until the EHR's token arrives, then ``active``; ``failed``
#: keeps the reason (an OAuth error or an unusable answer) for the page that shows it.
LAUNCH_STAGES = ("authorizing", "active", "failed")

launches = Table(
    "launches", metadata,
    Column("id", _id(), primary_key=True),
    Column("stage", String(16), nullable=False),
    Column("iss", Text, nullable=False),  # the EHR's FHIR base
    Column("client_id", Text, nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("token_endpoint", Text, nullable=False),
    # While authorizing: the OAuth state (unique, single use), the PKCE verifier, the
    # EHR's launch id. Cleared when the code is exchanged.
    Column("oauth_state", String(64), unique=True),
    Column("code_verifier", Text),
    Column("launch", Text),
    # The OpenID nonce sent with the authorize request (its id token must carry it).
    Column("nonce", String(64)),
    # The tokens, sealed with a key derived from SECRET_KEY (never in the cookie, never
    # logged); ``expires_at`` is the access token's.
    Column("access_token", Text),
    Column("refresh_token", Text),
    Column("scope", Text),
    Column("expires_at", UTCDateTime()),
    # The launch context the token came with.
    Column("ehr_patient", Text),
    Column("ehr_encounter", Text),
    Column("fhir_user", Text),
    Column("patient_id", _id(), ForeignKey("patients.id")),
    Column("exam_id", _id(), ForeignKey("exams.id")),
    Column("error", Text),
    Column("version", Integer, nullable=False),
    Column("created", UTCDateTime(), nullable=False),
    Column("updated", UTCDateTime(), nullable=False),
    CheckConstraint("stage IN ('authorizing', 'active', 'failed')", name="stage"),
    Index(None, "created"),
)

#: The signed revisions' Observations, materialised at signature exactly as the FHIR API
#: serves them (``resource``: the JSON text as written, so every read serves the same
#: bytes), one row per Observation per revision. ``current`` marks those of the exam's
#: latest revision: an amendment's signature adds its own rows and, in the same
#: transaction, unmarks the earlier revision's, which stay stored (the only update).
#: ``patient_id`` and ``date`` (effective) are copied out for search; ``position`` keeps
#: the form order within a revision.
observations = Table(
    "observations", metadata,
    Column("exam_id", _id(), ForeignKey("exams.id"), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("id", String(64), primary_key=True),  # "<exam id>-<16 hex>"
    Column("position", Integer, nullable=False),
    Column("patient_id", _id(), ForeignKey("patients.id"), nullable=False),
    Column("date", UTCDateTime(), nullable=False),
    Column("current", Boolean, nullable=False),
    Column("resource", Text, nullable=False),
    # the search: a patient's current Observations by date, counted from the index alone
    Index(None, "patient_id", "current", "date"),
    Index(None, "exam_id", "id"),
)

#: Each materialised Observation's codings (``system`` "" for a coding without one), for
#: the ``code`` token search.
observation_codes = Table(
    "observation_codes", metadata,
    Column("exam_id", _id(), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("observation_id", String(64), primary_key=True),
    Column("system", Text, primary_key=True),
    Column("code", Text, primary_key=True),
    ForeignKeyConstraint(["exam_id", "revision", "observation_id"],
                         ["observations.exam_id", "observations.revision", "observations.id"]),
    Index(None, "code", "system"),
)

#: States of a PROM in a visit (``prom_responses``): being answered, or finished.
PROM_STATES = ("in-progress", "completed")

#: The outcome measures (PROMs) added to an exam (a visit): the instrument's canonical
#: ``url|version``, the answers as entered and the scored QuestionnaireResponse made from
#: them (scores always recomputed by the server), ``version`` the autosave's ETag,
#: ``position`` the order they were added. Written only while the exam is editable (0012).
prom_responses = Table(
    "prom_responses", metadata,
    Column("id", _id(), primary_key=True),
    Column("exam_id", _id(), ForeignKey("exams.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("instrument", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("answers", json_type(), nullable=False),
    Column("response", json_type(), nullable=False),
    Column("created", UTCDateTime(), nullable=False),
    Column("updated", UTCDateTime(), nullable=False),
    Column("added_by", Text, nullable=False),
    CheckConstraint("state IN ('in-progress', 'completed')", name="state"),
    CheckConstraint("version >= 1", name="version"),
    UniqueConstraint("exam_id", "position"),
)

cds_jtis = Table(
    "cds_jtis", metadata,
    Column("iss", Text, primary_key=True),
    Column("jti", Text, primary_key=True),
    # When the JWT expires: after that it is refused for its ``exp`` anyway, so the row
    # can go.
    Column("expires_at", UTCDateTime(), nullable=False),
    Index(None, "expires_at"),
)

#: One role each; an admin may also hold ``clinician`` (``also_clinician``).
ROLES = ("clinician", "assistant", "admin")

users = Table(
    "users", metadata,
    Column("id", _id(), primary_key=True),  # also the Practitioner id
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("also_clinician", Boolean, nullable=False),
    # the Practitioner's identifier (e.g. a national provider number), optional
    Column("identifier_system", Text),
    Column("identifier_value", Text),
    Column("password_hash", Text, nullable=False),  # Argon2id, PHC string
    Column("active", Boolean, nullable=False),
    Column("failed_attempts", Integer, nullable=False),
    Column("locked_until", UTCDateTime()),
    Column("created", UTCDateTime(), nullable=False),
    Column("updated", UTCDateTime(), nullable=False),
    CheckConstraint("role IN ('clinician', 'assistant', 'admin')", name="role"),
    CheckConstraint("role = 'admin' OR NOT also_clinician", name="also_clinician"),
)

#: How a person is known outside: ``oidc`` (an identity provider's ``sub``) or
#: ``fhirUser`` (an EHR's Practitioner URL, from a SMART launch's id token).
IDENTITY_KINDS = ("oidc", "fhirUser")

identities = Table(
    "identities", metadata,
    Column("id", _id(), primary_key=True),
    Column("user_id", _id(), ForeignKey("users.id"), nullable=False),
    Column("issuer", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("subject", Text, nullable=False),
    Column("created", UTCDateTime(), nullable=False),
    CheckConstraint("kind IN ('oidc', 'fhirUser')", name="kind"),
    UniqueConstraint("issuer", "kind", "subject"),
    Index(None, "user_id"),
)

sessions = Table(
    "sessions", metadata,
    Column("id", String(64), primary_key=True),  # hex SHA-256 of the cookie's token
    Column("user_id", _id(), ForeignKey("users.id"), nullable=False),
    Column("created", UTCDateTime(), nullable=False),  # the sign-in: absolute lifetime
    Column("last_seen", UTCDateTime(), nullable=False),  # the idle timeout
    # Patient mode: the tablet was handed to the patient for this PROM (prom_responses.id)
    # and reaches only its pages until the clinician's password is entered (0012). No
    # foreign key: a removed PROM must not end patient mode.
    Column("patient_prom_id", _id()),
    Index(None, "user_id"),
)

setup_tokens = Table(
    "setup_tokens", metadata,
    Column("id", String(64), primary_key=True),  # hex SHA-256 of the URL's token
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime()),
)

login_failures = Table(
    "login_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("address", String(64), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index(None, "address", "at"),
)

#: The audit trail: one row per AuditEvent, append-only (database triggers refuse UPDATE
#: and DELETE; migration 0006). The columns copy out of the event what the audit search
#: filters on; ``event`` is the AuditEvent JSON exactly as written (text, so the bytes
#: an auditor exports are the bytes appended).
audit_events = Table(
    "audit_events", metadata,
    Column("id", _id(), primary_key=True),  # the AuditEvent's id
    Column("recorded", UTCDateTime(), nullable=False),
    Column("action", String(1), nullable=False),
    Column("type", Text, nullable=False),  # type.code
    Column("subtype", Text),  # the first subtype's code
    Column("outcome", String(2), nullable=False),
    Column("agent", Text),  # the requesting user's username
    Column("address", Text),  # the network address the request came from
    Column("patient_id", Text),
    Column("resource", Text),  # "Type/id" of the resource read or written
    Column("event", Text, nullable=False),
    Index(None, "patient_id", "recorded"),
    Index(None, "agent", "recorded"),
    Index(None, "recorded"),
)

#: Integrators of the FHIR API (SMART Backend Services clients). ``id`` is the OAuth
#: client_id (the ``iss`` and ``sub`` of their assertions); keys inline (``jwks``) or
#: behind ``jwks_url``; ``scope`` the system/ scopes they may be granted.
api_clients = Table(
    "api_clients", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("jwks", json_type()),
    Column("jwks_url", Text),
    Column("scope", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created", UTCDateTime(), nullable=False),
    Column("updated", UTCDateTime(), nullable=False),
    CheckConstraint("jwks IS NOT NULL OR jwks_url IS NOT NULL", name="keys"),
)

#: Access tokens issued at ``POST /auth/token``: opaque, stored as the SHA-256 of the
#: token, bound to the FHIR base they were issued for (``audience``) and short-lived.
api_tokens = Table(
    "api_tokens", metadata,
    Column("id", String(64), primary_key=True),  # hex SHA-256 of the token
    Column("client_id", String(64), ForeignKey("api_clients.id"), nullable=False),
    Column("scope", Text, nullable=False),
    Column("audience", Text, nullable=False),
    Column("issued", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index(None, "client_id"),
    Index(None, "expires_at"),
)
