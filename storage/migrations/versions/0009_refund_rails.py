"""Refund attempts remember when they first went to their gateway (an attempt sent with an unknown
outcome is asked about before it is sent again), the rail's own word for them, and why a rail refused one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

Frozen like 0001: plain SQLAlchemy types.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refund_attempts") as batch:
        batch.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("rail_status", sa.String(32), nullable=True))
        batch.add_column(sa.Column("error", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refund_attempts") as batch:
        batch.drop_column("error")
        batch.drop_column("rail_status")
        batch.drop_column("sent_at")
