"""SMART launches, the CDS Hooks replay cache, and the links from the plugin's records
to the EHR's (patient, encounter, launch).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

Types are spelled out here rather than imported from ``tables`` (see 0001). The new
columns on existing tables are nullable, so the upgrade is a plain ADD COLUMN on both
backends; their uniqueness is a unique index (SQLite cannot add a constraint in place).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
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
        "launches",
        sa.Column("id", _id(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("iss", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("token_endpoint", sa.Text(), nullable=False),
        sa.Column("oauth_state", sa.String(length=64), nullable=True),
        sa.Column("code_verifier", sa.Text(), nullable=True),
        sa.Column("launch", sa.Text(), nullable=True),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("expires_at", _time(), nullable=True),
        sa.Column("ehr_patient", sa.Text(), nullable=True),
        sa.Column("ehr_encounter", sa.Text(), nullable=True),
        sa.Column("fhir_user", sa.Text(), nullable=True),
        sa.Column("patient_id", _id(), nullable=True),
        sa.Column("exam_id", _id(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created", _time(), nullable=False),
        sa.Column("updated", _time(), nullable=False),
        sa.CheckConstraint("stage IN ('authorizing', 'active', 'failed')",
                           name="ck_launches_stage"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"],
                                name="fk_launches_patient_id_patients"),
        sa.ForeignKeyConstraint(["exam_id"], ["exams.id"], name="fk_launches_exam_id_exams"),
        sa.PrimaryKeyConstraint("id", name="pk_launches"),
        sa.UniqueConstraint("oauth_state", name="uq_launches_oauth_state"),
    )
    op.create_index("ix_launches_created", "launches", ["created"])
    op.create_table(
        "cds_jtis",
        sa.Column("iss", sa.Text(), nullable=False),
        sa.Column("jti", sa.Text(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("iss", "jti", name="pk_cds_jtis"),
    )
    op.create_index("ix_cds_jtis_expires_at", "cds_jtis", ["expires_at"])
    op.add_column("patients", sa.Column("ehr_base", sa.Text(), nullable=True))
    op.add_column("patients", sa.Column("ehr_id", sa.Text(), nullable=True))
    op.create_index("ix_patients_ehr_base_ehr_id", "patients", ["ehr_base", "ehr_id"],
                    unique=True)
    op.add_column("exams", sa.Column("encounter", _json(), nullable=True))
    op.add_column("exams", sa.Column("launch_id", _id(), nullable=True))


def downgrade() -> None:
    op.drop_column("exams", "launch_id")
    op.drop_column("exams", "encounter")
    op.drop_index("ix_patients_ehr_base_ehr_id", table_name="patients")
    op.drop_column("patients", "ehr_id")
    op.drop_column("patients", "ehr_base")
    op.drop_index("ix_cds_jtis_expires_at", table_name="cds_jtis")
    op.drop_table("cds_jtis")
    op.drop_index("ix_launches_created", table_name="launches")
    op.drop_table("launches")
