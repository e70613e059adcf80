"""The signed revisions' Observations, materialised: tables ``observations`` and
``observation_codes``.

Revision ID: 0010
Revises: 0009 (frozen documents)
Create Date: 2026-12-06

The Observation search and read served what they derived, on every request, from each
exam's current revision with the knowledge loaded at the time; they now read what was
stored at signature (``record.observations``). This migration only builds the tables:
the rows of revisions signed before it are written by the backfill that runs right after
every upgrade (``record.observations.backfill``, from ``create_app`` and ``python -m
plugin db upgrade``), because deriving them needs the knowledge (questionnaires and
mappings), which a migration does not load, and the same code that signs, which a
migration must not import (it would change under an old revision file).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "observations",
        sa.Column("exam_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["exam_id"], ["exams.id"],
                                name="fk_observations_exam_id_exams"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"],
                                name="fk_observations_patient_id_patients"),
        sa.PrimaryKeyConstraint("exam_id", "revision", "id", name="pk_observations"),
    )
    op.create_index("ix_observations_exam_id_id", "observations", ["exam_id", "id"])
    op.create_index("ix_observations_patient_id_current_date", "observations",
                    ["patient_id", "current", "date"])
    op.create_table(
        "observation_codes",
        sa.Column("exam_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("observation_id", sa.String(length=64), nullable=False),
        sa.Column("system", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["exam_id", "revision", "observation_id"],
                                ["observations.exam_id", "observations.revision",
                                 "observations.id"],
                                name="fk_observation_codes_exam_id_observations"),
        sa.PrimaryKeyConstraint("exam_id", "revision", "observation_id", "system", "code",
                                name="pk_observation_codes"),
    )
    op.create_index("ix_observation_codes_code_system", "observation_codes",
                    ["code", "system"])


def downgrade() -> None:
    op.drop_index("ix_observation_codes_code_system", table_name="observation_codes")
    op.drop_table("observation_codes")
    op.drop_index("ix_observations_patient_id_current_date", table_name="observations")
    op.drop_index("ix_observations_exam_id_id", table_name="observations")
    op.drop_table("observations")
