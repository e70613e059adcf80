"""The exam store's tables, defined once: the Store queries them, and a test compares
them with what the Alembic migrations build, so the two can never drift apart.

Four tables: ``patients``; ``exams`` (one row per exam holding its working answers and
its single draft, with a ``version`` that is the ETag); ``revisions`` (one row per
signature, never updated, so the history of a signed record stays as it was signed);
``outbox`` (one row per signed revision to deliver to the EHR: the transaction Bundle,
written in the signature's own transaction, and its delivery state).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (JSON, CheckConstraint, Column, DateTime, Dialect, ForeignKey, Index,
                        Integer, MetaData, String, Table, Text, TypeDecorator, UniqueConstraint,
                        Uuid)
from sqlalchemy.dialects.postgresql import JSONB

STATES = ("draft", "signed", "amending")
#: Delivery states of an outbox row: waiting (pending), claimed by a worker under a lease
#: (in-flight), accepted by the EHR (delivered), given up (dead).
DELIVERY_STATES = ("pending", "in-flight", "delivered", "dead")
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
    Index(None, "family", "given"),
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
    CheckConstraint("state IN ('draft', 'signed', 'amending')", name="state"),
    CheckConstraint("version >= 1", name="version"),
    Index(None, "patient_id", "created"),
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
    CheckConstraint("status IN ('completed', 'amended')", name="status"),
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
    CheckConstraint("state IN ('pending', 'in-flight', 'delivered', 'dead')", name="state"),
    UniqueConstraint("exam_id", "revision"),
    Index(None, "state", "next_attempt_at"),
)
