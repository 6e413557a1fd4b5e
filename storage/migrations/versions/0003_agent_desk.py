"""Agent desk: desk items (topic, card, owner), the desk's audit log, copied-message links, approvals
waiting for a second person.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Frozen like 0001: plain SQLAlchemy types, names per storage.models.NAMING_CONVENTION.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "desk_items",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("case_no", sa.String(length=32), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=True),
        sa.Column("card_message_id", sa.BigInteger(), nullable=True),
        sa.Column("owner_id", sa.BigInteger(), nullable=True),
        sa.Column("owner_since", _ts(), nullable=True),
        sa.Column("owner_active_at", _ts(), nullable=True),
        sa.Column("reminded_at", _ts(), nullable=True),
        sa.Column("opened_at", _ts(), nullable=False),
        sa.Column("closed_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_desk_items"),
    )
    for column in ("case_no", "chat_id", "thread_id"):
        op.create_index(f"ix_desk_items_{column}", "desk_items", [column])
    op.create_table(
        "desk_audit",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_desk_audit"),
    )
    op.create_index("ix_desk_audit_actor_id", "desk_audit", ["actor_id"])
    op.create_table(
        "message_links",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("source_chat_id", sa.BigInteger(), nullable=False),
        sa.Column("source_message_id", sa.BigInteger(), nullable=False),
        sa.Column("copy_chat_id", sa.BigInteger(), nullable=False),
        sa.Column("copy_message_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_message_links"),
        sa.UniqueConstraint("source_chat_id", "source_message_id", "direction",
                            name="uq_message_links_source_chat_id_source_message_id_direction"),
    )
    op.create_table(
        "pending_approvals",
        sa.Column("case_no", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("requested_by", sa.BigInteger(), nullable=False),
        sa.Column("requested_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("case_no", name="pk_pending_approvals"),
    )


def downgrade() -> None:
    for table in ("pending_approvals", "message_links", "desk_audit", "desk_items"):
        op.drop_table(table)
