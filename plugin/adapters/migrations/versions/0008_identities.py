"""Identities: who a person is at a hospital identity provider or an EHR, linked to
their user; and the nonce an EHR launch sent (to check the EHR's id token against).

Revision ID: 0008
Revises: 0007 (the API clients)
Create Date: 2026-12-06

``identities`` holds one row per (issuer, kind, subject): ``kind`` ``oidc`` for an
OpenID provider's ``sub``, ``fhirUser`` for an EHR's Practitioner URL. The unique key
is what sign-in matches on, so two processes signing the same new person in at once
cannot link them twice. Types are spelled out here rather than imported (see 0001).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identities",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('oidc', 'fhirUser')", name=op.f("ck_identities_kind")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_identities_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint("issuer", "kind", "subject",
                            name=op.f("uq_identities_issuer_kind_subject")),
    )
    op.create_index(op.f("ix_identities_user_id"), "identities", ["user_id"])
    op.add_column("launches", sa.Column("nonce", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("launches") as batch:
        batch.drop_column("nonce")
    op.drop_index(op.f("ix_identities_user_id"), table_name="identities")
    op.drop_table("identities")
