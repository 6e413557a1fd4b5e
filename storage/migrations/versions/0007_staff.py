"""Staff and moderation: the desk's agents and supervisors in the database (with an audit of every
change), and banned or muted customer chats.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

Frozen like 0001: plain SQLAlchemy types.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "staff",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("alias", sa.String(64), nullable=True),
        sa.Column("added_by", sa.String(64), nullable=False),
        sa.Column("added_at", _AT, nullable=False),
        sa.Column("removed_at", _AT, nullable=True),
        sa.Column("removed_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_staff"),
        sa.UniqueConstraint("user_id", name="uq_staff_user_id"),
    )
    op.create_table(
        "staff_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", _AT, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("alias", sa.String(64), nullable=True),
        sa.Column("by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_staff_events"),
    )
    op.create_index("ix_staff_events_user_id", "staff_events", ["user_id"])
    op.create_table(
        "restrictions",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.Column("until", _AT, nullable=True),
        sa.Column("noticed_at", _AT, nullable=True),
        sa.PrimaryKeyConstraint("chat_id", name="pk_restrictions"),
    )


def downgrade() -> None:
    op.drop_table("restrictions")
    op.drop_index("ix_staff_events_user_id", table_name="staff_events")
    op.drop_table("staff_events")
    op.drop_table("staff")
