"""The outbox: each signed revision's transaction Bundle, queued for the EHR.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Types are spelled out here rather than imported from ``tables`` (see 0001).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
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
        "outbox",
        sa.Column("id", _id(), nullable=False),
        sa.Column("exam_id", _id(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _time(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_until", _time(), nullable=True),
        sa.Column("created", _time(), nullable=False),
        sa.Column("updated", _time(), nullable=False),
        sa.Column("delivered_at", _time(), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'in-flight', 'delivered', 'dead')",
                           name="ck_outbox_state"),
        sa.ForeignKeyConstraint(["exam_id"], ["exams.id"], name="fk_outbox_exam_id_exams"),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("exam_id", "revision", name="uq_outbox_exam_id_revision"),
    )
    op.create_index("ix_outbox_state_next_attempt_at", "outbox", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_state_next_attempt_at", table_name="outbox")
    op.drop_table("outbox")
