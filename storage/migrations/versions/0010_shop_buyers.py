"""Orders carry what a card shop knows of its buyer (the e-mail or contact given at checkout and a digest
of the order's 查询密码) and the delivered 卡密 (shop connectors, dialogs.proof).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

Frozen like 0001: plain SQLAlchemy types.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("buyer_contact", sa.String(255), nullable=True))
        batch.add_column(sa.Column("query_secret", sa.String(64), nullable=True))
        batch.add_column(sa.Column("delivered_codes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("delivered_codes")
        batch.drop_column("query_secret")
        batch.drop_column("buyer_contact")
