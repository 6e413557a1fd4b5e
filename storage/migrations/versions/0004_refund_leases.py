"""Refund leases: a refund worker holds a pending attempt (claimed_by, claim_until) while it calls the
gateway, so workers on one database never call for the same attempt at once; a partial index on the
pending attempts for their claim.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

Frozen like 0001: plain SQLAlchemy types, names per storage.models.NAMING_CONVENTION.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER most things in place; on PostgreSQL it is plain ALTER TABLE.
    # Existing attempts get no lease: any worker may take the pending ones at once.
    with op.batch_alter_table("refund_attempts") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("claim_until", _ts(), nullable=True))
    pending = sa.text("status = 'pending'")
    op.create_index("ix_refund_attempts_pending_gateway_id", "refund_attempts", ["gateway", "id"],
                    sqlite_where=pending, postgresql_where=pending)


def downgrade() -> None:
    op.drop_index("ix_refund_attempts_pending_gateway_id", "refund_attempts")
    with op.batch_alter_table("refund_attempts") as batch:
        for column in ("claim_until", "claimed_by"):
            batch.drop_column(column)
