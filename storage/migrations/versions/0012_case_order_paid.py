"""Cases keep what the order said was paid when they were filed (cases.order_paid): an audited order
correction (dialogs.order_facts) may change the order's amount later, never this.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05

Frozen like 0001: plain SQLAlchemy types.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("order_paid", sa.Numeric(12, 2), nullable=True))
    # Until now no upsert of an order with cases was refused, so today's amount is the best there is.
    op.execute("UPDATE cases SET order_paid = (SELECT orders.amount FROM orders WHERE orders.order_no = cases.order_no)")


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("order_paid")
