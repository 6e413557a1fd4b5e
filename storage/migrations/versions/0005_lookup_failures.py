"""Lookup failures: failed phone-digit checks counted per order number as typed, from any chat, so
several accounts together get no more guesses at one order than one account does.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Frozen like 0001: plain SQLAlchemy types, names per storage.models.NAMING_CONVENTION.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "lookup_failures",
        sa.Column("order_no", sa.String(length=64), nullable=False),
        sa.Column("window_start", _ts(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", _ts(), nullable=True),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("order_no", name="pk_lookup_failures"),
    )
    op.create_index("ix_lookup_failures_updated_at", "lookup_failures", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_lookup_failures_updated_at", "lookup_failures")
    op.drop_table("lookup_failures")
