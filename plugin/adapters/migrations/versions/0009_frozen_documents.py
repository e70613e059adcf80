"""Signed records frozen at signature: ``frozen_inputs`` (what a revision's views and
documents are made from, with the render's bookkeeping) and ``documents`` (each
revision's PDFs, rendered once, served and delivered byte for byte).

Revision ID: 0009
Revises: 0008 (identities)
Create Date: 2026-12-06

Types are spelled out here rather than imported from ``tables`` (see 0001). Revisions
signed before this migration have no frozen inputs: their pages and PDFs are made as
before (``record.freeze`` says so), nothing is invented for them here.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True),
                                                   "postgresql")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "frozen_inputs",
        sa.Column("exam_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("knowledge_version", sa.Text(), nullable=False),
        sa.Column("inputs", _json(), nullable=False),
        sa.Column("created", _time(), nullable=False),
        sa.Column("rendered_at", _time(), nullable=True),
        sa.Column("render_attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_until", _time(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["exam_id", "revision"], ["revisions.exam_id", "revisions.number"],
                                name="fk_frozen_inputs_exam_id_revisions"),
        sa.PrimaryKeyConstraint("exam_id", "revision", name="pk_frozen_inputs"),
    )
    op.create_index("ix_frozen_inputs_rendered_at_claimed_until", "frozen_inputs",
                    ["rendered_at", "claimed_until"])
    op.create_table(
        "documents",
        sa.Column("exam_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("media_type", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created", _time(), nullable=False),
        sa.ForeignKeyConstraint(["exam_id", "revision"],
                                ["frozen_inputs.exam_id", "frozen_inputs.revision"],
                                name="fk_documents_exam_id_frozen_inputs"),
        sa.PrimaryKeyConstraint("exam_id", "revision", "kind", name="pk_documents"),
    )


def downgrade() -> None:
    op.drop_table("documents")
    op.drop_index("ix_frozen_inputs_rendered_at_claimed_until", table_name="frozen_inputs")
    op.drop_table("frozen_inputs")
