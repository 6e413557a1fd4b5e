"""Orders carry the payment rail's trade number (Alipay trade_no, WeChat transaction_id, the shop's
payment serial), so finance can refund against it from the export.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

Frozen like 0001: plain SQLAlchemy types.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("trade_no", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("trade_no")
