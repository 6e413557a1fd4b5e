"""Initial schema: orders, conversations, update ledger, cases, evidence, agent requests, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Frozen: uses plain SQLAlchemy types (not storage.models), so later model changes cannot alter
what this revision creates. Constraint names follow storage.models.NAMING_CONVENTION.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    # 64-bit keys, but INTEGER on SQLite where only INTEGER PRIMARY KEY autoincrements.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _money() -> sa.Numeric[Decimal]:
    return sa.Numeric(precision=12, scale=2)


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("order_no", sa.String(length=64), nullable=False),
        sa.Column("buyer_phone", sa.String(length=32), nullable=False),
        sa.Column("buyer_telegram_id", sa.BigInteger(), nullable=True),
        sa.Column("product_name", sa.String(length=255), nullable=False),
        sa.Column("product_kind", sa.String(length=32), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("amount", _money(), nullable=False),
        sa.Column("payment_channel", sa.String(length=32), nullable=False),
        sa.Column("paid_at", _ts(), nullable=False),
        sa.Column("delivered_at", _ts(), nullable=True),
        sa.Column("delivery_status", sa.String(length=16), nullable=False),
        sa.Column("card_redeemed", sa.Boolean(), nullable=True),
        sa.Column("topup_credited", sa.Boolean(), nullable=True),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("order_no", name="pk_orders"),
    )
    op.create_index("ix_orders_buyer_telegram_id", "orders", ["buyer_telegram_id"])

    op.create_table(
        "conversations",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", name="pk_conversations"),
    )

    op.create_table(
        "processed_updates",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("update_id", name="pk_processed_updates"),
    )
    op.create_index("ix_processed_updates_processed_at", "processed_updates", ["processed_at"])

    op.create_table(
        "cases",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("case_no", sa.String(length=32), nullable=False),
        sa.Column("order_no", sa.String(length=64), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("amount", _money(), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("wants_human", sa.Boolean(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("review_due", sa.Date(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("open_key", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(["order_no"], ["orders.order_no"], name="fk_cases_order_no_orders"),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
        sa.UniqueConstraint("case_no", name="uq_cases_case_no"),
        sa.UniqueConstraint("open_key", name="uq_cases_open_key"),
    )
    op.create_index("ix_cases_order_no", "cases", ["order_no"])
    op.create_index("ix_cases_user_id_created_at", "cases", ["user_id", "created_at"])

    op.create_table(
        "case_events",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("case_id", _id(), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_case_events_case_id_cases"),
        sa.PrimaryKeyConstraint("id", name="pk_case_events"),
    )
    op.create_index("ix_case_events_case_id", "case_events", ["case_id"])

    op.create_table(
        "case_counters",
        sa.Column("day", sa.String(length=8), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_case_counters"),
    )

    op.create_table(
        "evidence",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("draft_id", sa.String(length=64), nullable=False),
        sa.Column("case_no", sa.String(length=32), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("file_unique_id", sa.String(length=128), nullable=False),
        sa.Column("file_id", sa.String(length=255), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("mime_type", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evidence"),
        sa.UniqueConstraint("draft_id", "file_unique_id", name="uq_evidence_draft_id_file_unique_id"),
    )
    op.create_index("ix_evidence_case_no", "evidence", ["case_no"])

    op.create_table(
        "agent_requests",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("case_no", sa.String(length=32), nullable=True),
        sa.Column("order_no", sa.String(length=64), nullable=True),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agent_requests"),
    )
    op.create_index("ix_agent_requests_chat_id", "agent_requests", ["chat_id"])

    op.create_table(
        "outbox",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("available_at", _ts(), nullable=False),
        sa.Column("sent_at", _ts(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
    )
    op.create_index("ix_outbox_available_at", "outbox", ["available_at"])


def downgrade() -> None:
    # Children before parents (foreign keys).
    for table in (
        "outbox",
        "agent_requests",
        "evidence",
        "case_counters",
        "case_events",
        "cases",
        "processed_updates",
        "conversations",
        "orders",
    ):
        op.drop_table(table)
