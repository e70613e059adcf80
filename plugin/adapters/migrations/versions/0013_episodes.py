"""Episodes: an initial exam and the follow-ups linked to it (``exams.episode_id``).

Revision ID: 0013
Revises: 0011 (the head of main when written; engineer A's 0012 comes between at the merge)
Create Date: 2026-12-06

``episode_id`` is the id of the episode's initial exam: an initial exam's is its own id,
a follow-up's the initial exam it follows. Every exam before this migration was an
initial exam, so the back-fill sets each row's episode to itself. Indexed: a visit list
reads an episode's exams by it.

Nullable and without a foreign key on purpose: either would make SQLite rebuild
``exams`` (copy, drop, rename), and dropping it while revisions, the outbox and the
stored Observations reference it fails with foreign keys on (the engine turns them on
for every connection). The store writes the column on every insert and checks that a
follow-up names an initial exam of the same patient (``Store.create_exam``).
Types spelled out (see 0001).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exams") as batch:
        batch.add_column(sa.Column("episode_id", sa.Uuid(as_uuid=False), nullable=True))
    op.execute(sa.text("UPDATE exams SET episode_id = id"))
    op.create_index("ix_exams_episode_id_created", "exams", ["episode_id", "created"])


def downgrade() -> None:
    op.drop_index("ix_exams_episode_id_created", table_name="exams")
    with op.batch_alter_table("exams") as batch:
        batch.drop_column("episode_id")
