"""Patients, exams (one draft each, optimistic version) and signed revisions.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Types are spelled out here rather than imported from ``tables``: a revision must keep
building the schema it built on the day it was written, whatever the tables become.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True),
                                                   "postgresql")


def _id() -> sa.Uuid[str]:
    return sa.Uuid(as_uuid=False)


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "patients",
        sa.Column("id", _id(), nullable=False),
        sa.Column("resource", _json(), nullable=False),
        sa.Column("family", sa.Text(), nullable=True),
        sa.Column("given", sa.Text(), nullable=True),
        sa.Column("birth_date", sa.String(length=10), nullable=True),
        sa.Column("identifier", sa.Text(), nullable=True),
        sa.Column("search", sa.Text(), nullable=False),
        sa.Column("created", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_patients"),
    )
    op.create_index("ix_patients_family_given", "patients", ["family", "given"])
    op.create_table(
        "exams",
        sa.Column("id", _id(), nullable=False),
        sa.Column("patient_id", _id(), nullable=False),
        sa.Column("questionnaire", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("answers", _json(), nullable=False),
        sa.Column("draft", _json(), nullable=True),
        sa.Column("amend_reason", sa.Text(), nullable=True),
        sa.Column("revisions", sa.Integer(), nullable=False),
        sa.Column("created", _time(), nullable=False),
        sa.Column("updated", _time(), nullable=False),
        sa.CheckConstraint("state IN ('draft', 'signed', 'amending')", name="ck_exams_state"),
        sa.CheckConstraint("version >= 1", name="ck_exams_version"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"],
                                name="fk_exams_patient_id_patients"),
        sa.PrimaryKeyConstraint("id", name="pk_exams"),
    )
    op.create_index("ix_exams_patient_id_created", "exams", ["patient_id", "created"])
    op.create_table(
        "revisions",
        sa.Column("exam_id", _id(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answers", _json(), nullable=False),
        sa.Column("response", _json(), nullable=False),
        sa.Column("provenance", _json(), nullable=False),
        sa.Column("signed_by", sa.Text(), nullable=False),
        sa.Column("signed_at", _time(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('completed', 'amended')", name="ck_revisions_status"),
        sa.ForeignKeyConstraint(["exam_id"], ["exams.id"], name="fk_revisions_exam_id_exams"),
        sa.PrimaryKeyConstraint("exam_id", "number", name="pk_revisions"),
    )


def downgrade() -> None:
    op.drop_table("revisions")
    op.drop_index("ix_exams_patient_id_created", table_name="exams")
    op.drop_table("exams")
    op.drop_index("ix_patients_family_given", table_name="patients")
    op.drop_table("patients")
