"""Unconfirmed replies: a conversation keeps the replies to its last update until Telegram confirms them,
so a reply lost to a 429, a 5xx, a timeout or a crash after commit is sent again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Frozen like 0001: plain SQLAlchemy types.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("unconfirmed", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("unconfirmed_update", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("unconfirmed_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("unconfirmed_by", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        for column in ("unconfirmed_by", "unconfirmed_since", "unconfirmed_update", "unconfirmed"):
            batch.drop_column(column)
