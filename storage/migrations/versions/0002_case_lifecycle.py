"""Case lifecycle: status card, credit deadline and rating on cases; relay claims on the outbox;
undeliverable chats; case timers; refund attempts; callback nonces.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Frozen like 0001: plain SQLAlchemy types, names per storage.models.NAMING_CONVENTION.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER most things in place; on PostgreSQL it is plain ALTER TABLE.
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("credit_due", sa.Date(), nullable=True))
        batch.add_column(sa.Column("status_message_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("rating", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rating_comment", sa.Text(), nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("claim_until", _ts(), nullable=True))
        batch.add_column(sa.Column("dead_at", _ts(), nullable=True))
        batch.add_column(sa.Column("message_id", sa.BigInteger(), nullable=True))
    open_rows = sa.text("sent_at IS NULL AND dead_at IS NULL")
    op.create_index("ix_outbox_open_chat_id", "outbox", ["chat_id", "id"], sqlite_where=open_rows,
                    postgresql_where=open_rows)
    op.create_table(
        "chat_delivery",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("blocked_at", _ts(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", name="pk_chat_delivery"),
    )
    op.create_table(
        "case_timers",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("case_no", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("due_at", _ts(), nullable=False),
        sa.Column("done_at", _ts(), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claim_until", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_case_timers"),
        sa.UniqueConstraint("case_no", "kind", "version", "due_at", name="uq_case_timers_case_no_kind_version_due_at"),
    )
    op.create_index("ix_case_timers_case_no", "case_timers", ["case_no"])
    op.create_index("ix_case_timers_due_at", "case_timers", ["due_at"])
    op.create_table(
        "refund_attempts",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("case_no", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("gateway", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("external_ref", sa.String(length=128), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_refund_attempts"),
        sa.UniqueConstraint("idempotency_key", name="uq_refund_attempts_idempotency_key"),
    )
    op.create_index("ix_refund_attempts_case_no", "refund_attempts", ["case_no"])
    op.create_table(
        "api_nonces",
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("seen_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("signature", name="pk_api_nonces"),
    )
    op.create_index("ix_api_nonces_seen_at", "api_nonces", ["seen_at"])


def downgrade() -> None:
    for table in ("api_nonces", "refund_attempts", "case_timers", "chat_delivery"):
        op.drop_table(table)
    op.drop_index("ix_outbox_open_chat_id", "outbox")
    with op.batch_alter_table("outbox") as batch:
        for column in ("message_id", "dead_at", "claim_until", "claimed_by"):
            batch.drop_column(column)
    with op.batch_alter_table("cases") as batch:
        for column in ("rating_comment", "rating", "status_message_id", "credit_due"):
            batch.drop_column(column)
