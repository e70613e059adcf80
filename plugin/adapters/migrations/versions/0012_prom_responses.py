"""Outcome measures (PROMs) in a visit: table ``prom_responses``; patient mode on a
sign-in session: ``sessions.patient_prom_id``.

Revision ID: 0012
Revises: 0011 (the impression; the lead re-chains the parallel branches at merge)
Create Date: 2026-12-06

One row per PROM added to an exam: the instrument's canonical (``url|version``), its
state (in-progress until finished), a ``version`` that is the ETag of its autosave, the
answers as entered and the scored QuestionnaireResponse made from them. ``position``
keeps the order they were added. A session with ``patient_prom_id`` is in patient mode,
bound to that PROM (no foreign key: a PROM removed from under a patient-mode session must
not end patient mode, which would hand the patient the clinician's session).
Types are spelled out here rather than imported from ``tables`` (see 0001).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True),
                                                   "postgresql")


def upgrade() -> None:
    op.create_table(
        "prom_responses",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("exam_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("instrument", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("answers", _json(), nullable=False),
        sa.Column("response", _json(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.Text(), nullable=False),
        sa.CheckConstraint("state IN ('in-progress', 'completed')",
                           name="ck_prom_responses_state"),
        sa.CheckConstraint("version >= 1", name="ck_prom_responses_version"),
        sa.ForeignKeyConstraint(["exam_id"], ["exams.id"],
                                name="fk_prom_responses_exam_id_exams"),
        sa.PrimaryKeyConstraint("id", name="pk_prom_responses"),
        sa.UniqueConstraint("exam_id", "position", name="uq_prom_responses_exam_id_position"),
    )
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("patient_prom_id", sa.Uuid(as_uuid=False), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("patient_prom_id")
    op.drop_table("prom_responses")
