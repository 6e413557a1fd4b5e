"""The relational schema. Rows are mapped to domain objects in repositories; none leak out.

Enumerations are stored as short strings rather than native enums so that adding a value needs no
migration (PostgreSQL enum types cannot be altered inside a transaction).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

CENT = Decimal("0.01")

# Named constraints: SQLite and PostgreSQL then reflect identical names, so migrations can
# refer to them and alembic's compare_metadata sees no spurious diffs.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes stored as UTC.

    PostgreSQL keeps the offset (timestamptz); SQLite stores text without it, so values are
    normalised to UTC on the way in and tagged as UTC on the way out. Naive datetimes are refused:
    their meaning depends on the server's clock zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} (an offset is required)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """NUMERIC(12,2) read back as an exact Decimal with two places on every database.

    SQLite has no decimal type; SQLAlchemy then warns on every asdecimal read. We read floats and
    format them with two places ourselves, which is exact for 12 significant digits.
    """

    impl = Numeric(12, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(12, 2, asdecimal=False))
        return dialect.type_descriptor(Numeric(12, 2))

    def process_result_value(self, value: Any | None, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value.quantize(CENT)
        return Decimal(f"{value:.2f}")


# 64-bit surrogate keys, except on SQLite where only INTEGER PRIMARY KEY autoincrements.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OrderRow(Base):
    __tablename__ = "orders"

    order_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    buyer_phone: Mapped[str] = mapped_column(String(32))
    buyer_telegram_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    product_name: Mapped[str] = mapped_column(String(255))
    product_kind: Mapped[str] = mapped_column(String(32))
    tags: Mapped[str] = mapped_column(Text)  # comma-separated, sorted
    amount: Mapped[Decimal] = mapped_column(Money)
    payment_channel: Mapped[str] = mapped_column(String(32))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivery_status: Mapped[str] = mapped_column(String(16))
    card_redeemed: Mapped[bool | None] = mapped_column(Boolean)
    topup_credited: Mapped[bool | None] = mapped_column(Boolean)
    trade_no: Mapped[str | None] = mapped_column(String(64))
    buyer_contact: Mapped[str | None] = mapped_column(String(255))
    query_secret: Mapped[str | None] = mapped_column(String(64))  # dialogs.proof.secret_digest
    delivered_codes: Mapped[list[str] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConversationRow(Base):
    __tablename__ = "conversations"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger)
    locale: Mapped[str] = mapped_column(String(16))
    step: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Replies not yet confirmed by Telegram, and the update they answer (dialogs.domain.Conversation).
    unconfirmed: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    unconfirmed_update: Mapped[int | None] = mapped_column(BigInteger)
    # When they were handed to the sender; NULL with replies: the sender gave up on them.
    unconfirmed_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unconfirmed_by: Mapped[str | None] = mapped_column(String(64))  # the process sending them


class ProcessedUpdateRow(Base):
    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class CaseRow(Base):
    __tablename__ = "cases"
    __table_args__ = (Index("ix_cases_user_id_created_at", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    case_no: Mapped[str] = mapped_column(String(32), unique=True)
    order_no: Mapped[str] = mapped_column(ForeignKey("orders.order_no"), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(32))
    verdict: Mapped[str] = mapped_column(String(16))
    rule_id: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    amount: Mapped[Decimal] = mapped_column(Money)
    locale: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    wants_human: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    review_due: Mapped[date] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer)
    credit_due: Mapped[date | None] = mapped_column(Date)  # set when the refund starts
    # The customer's status card: the message the relay edits in place as the case moves.
    status_message_id: Mapped[int | None] = mapped_column(BigInteger)
    rating: Mapped[int | None] = mapped_column(Integer)  # 1-5 after refunded / rejected_final
    rating_comment: Mapped[str | None] = mapped_column(Text)
    # The order's delivered 卡密 when the case was filed (Case.delivered_codes); NULL: none.
    delivered_codes: Mapped[list[str] | None] = mapped_column(JSON)
    # f"{order_no}:{reason}" while the case is open, NULL otherwise: a portable partial unique
    # index ("one open case per order and reason"), as NULLs never collide.
    open_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    # The order's amount when the case was filed: an audited correction may change the order's later
    # (dialogs.order_facts); NULL only for a case filed against no stored order.
    order_paid: Mapped[Decimal | None] = mapped_column(Money)


class CaseEventRow(Base):
    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)


class CaseCounterRow(Base):
    __tablename__ = "case_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class LookupFailureRow(Base):
    """Failed phone-digit checks per order number as typed (see dialogs.ports.LookupFailures)."""

    __tablename__ = "lookup_failures"

    order_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer)
    last_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # for pruning


class EvidenceRow(Base):
    __tablename__ = "evidence"
    # The unique index leads with draft_id, so it also serves lookups by draft.
    __table_args__ = (UniqueConstraint("draft_id", "file_unique_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    draft_id: Mapped[str] = mapped_column(String(64))
    case_no: Mapped[str | None] = mapped_column(String(32), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    file_unique_id: Mapped[str] = mapped_column(String(128))
    file_id: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    mime_type: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AgentRequestRow(Base):
    __tablename__ = "agent_requests"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    case_no: Mapped[str | None] = mapped_column(String(32))
    order_no: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxRow(Base):
    __tablename__ = "outbox"
    # The open rows by chat, for the relay's claim (the oldest open row of each chat): stays small
    # however many rows were ever sent. Partial indexes exist on both SQLite and PostgreSQL.
    __table_args__ = (
        Index("ix_outbox_open_chat_id", "chat_id", "id",
              sqlite_where=text("sent_at IS NULL AND dead_at IS NULL"),
              postgresql_where=text("sent_at IS NULL AND dead_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    # A relay owns a row until claim_until; another relay may take it over after that.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # given up (e.g. Telegram rejected the message)
    message_id: Mapped[int | None] = mapped_column(BigInteger)  # what Telegram answered


class ChatDeliveryRow(Base):
    """Chats the bot cannot write to now (403: the user blocked the bot, the bot is out of the group);
    the row goes when the chat is reopened (the user writes again, the bot is added back)."""

    __tablename__ = "chat_delivery"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    blocked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)


class CaseTimerRow(Base):
    """A deadline or reminder that must fire once, even across restarts.

    `version` is the case version the timer was set for: a timer whose case has moved on since is
    stale and is dropped when it comes due."""

    __tablename__ = "case_timers"
    __table_args__ = (UniqueConstraint("case_no", "kind", "version", "due_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    case_no: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RefundAttemptRow(Base):
    """One try at paying a refund back; its idempotency key is what the platform deduplicates on.

    A refund worker holds a pending attempt until claim_until while it calls the gateway; another
    worker may take it after that. On a pending attempt nobody holds, claim_until is a not-before
    (the backoff after the gateway was unavailable)."""

    __tablename__ = "refund_attempts"
    # The pending attempts of a gateway, oldest first, for the workers' claim: stays small however
    # many attempts were ever settled. Partial indexes exist on both SQLite and PostgreSQL.
    __table_args__ = (
        Index("ix_refund_attempts_pending_gateway_id", "gateway", "id",
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    case_no: Mapped[str] = mapped_column(String(32), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    gateway: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(16))  # pending | requested | succeeded | failed
    external_ref: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first handed to the gateway
    rail_status: Mapped[str | None] = mapped_column(String(32))  # the rail's own word, as last heard
    error: Mapped[str | None] = mapped_column(String(32))  # dialogs.domain.RailError of a refused attempt


class ApiNonceRow(Base):
    """Signatures of platform callbacks already accepted: a replay inside the time window is refused."""

    __tablename__ = "api_nonces"

    signature: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class DeskItemRow(Base):
    __tablename__ = "desk_items"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_no: Mapped[str | None] = mapped_column(String(32), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    thread_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    card_message_id: Mapped[int | None] = mapped_column(BigInteger)
    owner_id: Mapped[int | None] = mapped_column(BigInteger)
    owner_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    owner_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeskAuditRow(Base):
    """Every desk action, and every refused attempt by someone who is not an agent."""

    __tablename__ = "desk_audit"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[int] = mapped_column(BigInteger, index=True)
    key: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    allowed: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(Text)


class MessageLinkRow(Base):
    __tablename__ = "message_links"
    __table_args__ = (UniqueConstraint("source_chat_id", "source_message_id", "direction"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16))
    source_chat_id: Mapped[int] = mapped_column(BigInteger)
    source_message_id: Mapped[int] = mapped_column(BigInteger)
    copy_chat_id: Mapped[int] = mapped_column(BigInteger)
    copy_message_id: Mapped[int | None] = mapped_column(BigInteger)


class PendingApprovalRow(Base):
    __tablename__ = "pending_approvals"

    case_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    requested_by: Mapped[int] = mapped_column(BigInteger)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StaffRow(Base):
    """The desk's agents and supervisors (dialogs.ports.StaffMember); a removed member keeps the row."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)  # first-added order
    user_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    role: Mapped[str] = mapped_column(String(16))
    alias: Mapped[str | None] = mapped_column(String(64))
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_by: Mapped[str | None] = mapped_column(String(64))


class StaffEventRow(Base):
    """Every change to the staff: who changed whom, how, when."""

    __tablename__ = "staff_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    action: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    alias: Mapped[str | None] = mapped_column(String(64))
    by: Mapped[str] = mapped_column(String(64))


class RestrictionRow(Base):
    """A banned (until NULL) or muted customer chat; read by its key on every customer update."""

    __tablename__ = "restrictions"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    noticed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
