"""The clinician's impression and plan: with the draft (``exams.impression``) and with
every signed revision (``revisions.impression``).

Revision ID: 0011
Revises: 0010 (stored Observations)
Create Date: 2026-12-06

Plain JSON (``decision/impression``'s stored form), nullable: no impression recorded is
NULL, which is also what every exam and revision signed before this migration has.
Types are spelled out here rather than imported from ``tables`` (see 0001).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True),
                                                   "postgresql")


def upgrade() -> None:
    for table in ("exams", "revisions"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("impression", _json(), nullable=True))


def downgrade() -> None:
    for table in ("revisions", "exams"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("impression")
