"""What reached the EHR (per outbox row), deliveries held for a person to confirm the
EHR's patient, and what deliveries learned of each EHR.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

Types are spelled out here rather than imported from ``tables`` (see 0001). The outbox's
state constraint gains ``held``: SQLite cannot alter a constraint in place, so the table
is rebuilt (Alembic's batch mode; PostgreSQL alters it directly).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = "state IN ('pending', 'in-flight', 'delivered', 'dead', 'held')"
OLD_STATES = "state IN ('pending', 'in-flight', 'delivered', 'dead')"


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True),
                                                   "postgresql")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("sent", _json(), nullable=True))
        batch.add_column(sa.Column("unsent", _json(), nullable=True))
        batch.add_column(sa.Column("candidates", _json(), nullable=True))
        batch.add_column(sa.Column("ehr_patient", sa.Text(), nullable=True))
        batch.drop_constraint("ck_outbox_state", type_="check")
        batch.create_check_constraint(op.f("ck_outbox_state"), sa.text(STATES))
    op.create_table(
        "ehr_servers",
        sa.Column("base", sa.Text(), nullable=False),
        sa.Column("way", sa.String(length=16), nullable=True),
        sa.Column("max_entries", sa.Integer(), nullable=True),
        sa.Column("updated", _time(), nullable=False),
        sa.PrimaryKeyConstraint("base", name="pk_ehr_servers"),
    )


def downgrade() -> None:
    op.drop_table("ehr_servers")
    op.execute("UPDATE outbox SET state = 'pending' WHERE state = 'held'")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(op.f("ck_outbox_state"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_state"), sa.text(OLD_STATES))
        batch.drop_column("ehr_patient")
        batch.drop_column("candidates")
        batch.drop_column("unsent")
        batch.drop_column("sent")
