"""Domain vocabulary: orders, cases, evidence and the conversation record.

Everything here is plain data: frozen slotted dataclasses and string enums, so the storage layer
can map them and the dialog machine can reason about them without knowing either side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, NewType

from dialogs.io import Reply

ChatId = NewType("ChatId", int)
UserId = NewType("UserId", int)
OrderNo = NewType("OrderNo", str)
CaseNo = NewType("CaseNo", str)


class ProductKind(StrEnum):
    CARD_CODE = "card_code"
    DIRECT_TOPUP = "direct_topup"
    MEMBERSHIP = "membership"
    DATA_PLAN = "data_plan"
    OTHER = "other"


class PaymentChannel(StrEnum):
    ALIPAY = "alipay"
    WECHAT = "wechat"
    EPAY = "epay"  # 彩虹易支付, the aggregator many card shops take Alipay / WeChat payments through
    BANK_CARD = "bank_card"
    BALANCE = "balance"


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    PENDING = "pending"


class Reason(StrEnum):
    CARD_INVALID = "card_invalid"
    CARD_USED = "card_used"
    CARD_CANNOT_ACTIVATE = "card_cannot_activate"
    CARD_NOT_RECEIVED = "card_not_received"
    TOPUP_NOT_CREDITED = "topup_not_credited"
    TOPUP_DUPLICATE = "topup_duplicate"
    TOPUP_WRONG_AMOUNT = "topup_wrong_amount"
    MEMBERSHIP_NOT_ACTIVATED = "membership_not_activated"
    NOT_AS_DESCRIBED = "not_as_described"
    OTHER = "other"


class Verdict(StrEnum):
    ELIGIBLE = "eligible"  # full refund by rule
    REVIEW = "review"  # a human decides
    NOT_ELIGIBLE = "not_eligible"


class CaseStatus(StrEnum):
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    NEEDS_INFO = "needs_info"
    APPROVED = "approved"
    REFUNDING = "refunding"
    REFUNDED = "refunded"
    REJECTED = "rejected"
    APPEALED = "appealed"
    REJECTED_FINAL = "rejected_final"
    WITHDRAWN = "withdrawn"
    CLOSED = "closed"
    REFUND_FAILED = "refund_failed"


OPEN_STATUSES: frozenset[CaseStatus] = frozenset(
    {
        CaseStatus.SUBMITTED,
        CaseStatus.IN_REVIEW,
        CaseStatus.NEEDS_INFO,
        CaseStatus.APPROVED,
        CaseStatus.REFUNDING,
        CaseStatus.REJECTED,
        CaseStatus.APPEALED,
        CaseStatus.REFUND_FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class Order:
    order_no: str
    buyer_phone: str
    product_name: str
    product_kind: ProductKind
    amount: Decimal
    payment_channel: PaymentChannel
    paid_at: datetime
    delivery_status: DeliveryStatus
    buyer_telegram_id: int | None = None
    tags: frozenset[str] = frozenset()
    delivered_at: datetime | None = None
    card_redeemed: bool | None = None
    topup_credited: bool | None = None
    # The payment rail's number for the purchase (Alipay trade_no, WeChat transaction_id, the shop's
    # payment serial): what finance refunds against. Optional: older imports have none.
    trade_no: str | None = None
    # How a card shop knows its buyer (dialogs.proof): the e-mail or contact string given at checkout,
    # and a digest of the order's 查询密码 (never the password itself; None: the order has none).
    buyer_contact: str | None = None
    query_secret: str | None = None
    # The delivered 卡密, one per entry, as the shop recorded them: masked wherever a customer or a log
    # could read them (dialogs.proof.mask_code), shown to agents on demand. Out of repr: a logged
    # Order (an exception's message, a debug line) never carries a code.
    delivered_codes: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    """A stored, validated evidence file (the bytes live on disk at `path`)."""

    file_unique_id: str
    file_id: str
    path: str
    sha256: str
    mime_type: str
    width: int
    height: int
    size: int


@dataclass(frozen=True, slots=True)
class Case:
    case_no: str
    order_no: str
    chat_id: int
    user_id: int
    reason: Reason
    verdict: Verdict
    rule_id: str
    description: str
    amount: Decimal
    locale: str
    status: CaseStatus
    created_at: datetime
    review_due: date
    evidence: tuple[EvidenceItem, ...] = ()
    wants_human: bool = False
    version: int = 1  # bumped by every status change; notifications deduplicate on it
    credit_due: date | None = None  # set when the refund starts
    status_message_id: int | None = None  # the customer's status card, edited in place
    rating: int | None = None
    rating_comment: str | None = None
    # The order's delivered 卡密 as they were when the case was filed (the shop's order may change
    # later): masked for the customer (dialogs.codes), shown whole to agents on demand, never logged.
    delivered_codes: tuple[str, ...] = field(default=(), repr=False)
    # What the order said was paid when the case was filed (set by the case store from the order); an
    # audited correction of the order (dialogs.order_facts) leaves it as it was. Derived by the store,
    # so not part of a case's equality (a case as drafted equals the case as read back).
    order_paid: Decimal | None = field(default=None, compare=False)


@dataclass(slots=True)
class Conversation:
    """The per-chat dialog record; `data` is the draft being built (JSON-serialisable)."""

    chat_id: int
    user_id: int
    locale: str
    step: str = "idle"
    data: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    # The replies to update `unconfirmed_update` that Telegram has not confirmed yet (written with the
    # update's commit, cleared once sent): sent again when that update comes again, or before the
    # customer's next message is answered at the step they left the customer in.
    unconfirmed: tuple[Reply, ...] = ()
    unconfirmed_update: int | None = None
    # When they were handed to the sender (they may still be on their way); None: the sender gave up.
    unconfirmed_since: datetime | None = None
    unconfirmed_by: str | None = None  # the process that was to send them

    def lost_replies(self, now: datetime, grace: timedelta, me: str) -> tuple[Reply, ...]:
        """The unconfirmed replies that will not arrive by themselves (the caller, process `me`, is not
        sending them): the sender gave up on them; or they were `me`'s to send; or another process's,
        unconfirmed for `grace` (it may be sending them still, or it crashed)."""
        if not self.unconfirmed:
            return ()
        if (self.unconfirmed_since is not None and self.unconfirmed_by != me
                and now - self.unconfirmed_since < grace):
            return ()
        return self.unconfirmed


@dataclass(frozen=True, slots=True)
class AgentRequest:
    chat_id: int
    user_id: int
    created_at: datetime
    case_no: str | None = None
    order_no: str | None = None
    step: str = "idle"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A notification to deliver later through the relay (never straight from a handler)."""

    kind: str
    chat_id: int | None
    dedupe_key: str
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """An outbox row a relay has claimed: it sends it, then marks it sent, deferred or dead."""

    id: int
    kind: str
    chat_id: int | None
    dedupe_key: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


class TimerKind(StrEnum):
    REVIEW_DUE = "review_due"  # the review promise passes: alert supervisors, apologise, move the date
    CREDIT_DUE = "credit_due"  # the money should have arrived by now
    INFO_REMINDER = "info_reminder"  # needs_info: remind the customer (24 h, 72 h)
    INFO_CLOSE = "info_close"  # needs_info: close after days of silence


@dataclass(frozen=True, slots=True)
class Timer:
    """A claimed, due timer. `version` is the case version it was set for (stale once the case moves)."""

    id: int
    case_no: str
    kind: TimerKind
    version: int
    due_at: datetime


class RefundStatus(StrEnum):
    PENDING = "pending"  # recorded, not yet sent to the gateway
    REQUESTED = "requested"  # the gateway accepted it; waiting for the money to land
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RailError(StrEnum):
    """Why a rail refused a refund, in words the case history, the desk and the customer share."""

    TRADE_CLOSED = "trade_closed"  # the purchase is closed on the rail (never paid, or already settled away)
    WINDOW_PASSED = "window_passed"  # past the rail's refund window (Alipay / WeChat Pay: a year)
    BALANCE_LOW = "balance_low"  # the merchant account cannot cover it now: retry later (RailBusy)
    AMOUNT_TOO_HIGH = "amount_too_high"  # more than the rail still holds refundable for the purchase
    REJECTED = "rejected"  # any other refusal; `reason` has the rail's own words


@dataclass(frozen=True, slots=True)
class RefundAttempt:
    case_no: str
    idempotency_key: str
    gateway: str
    amount: Decimal
    status: RefundStatus
    created_at: datetime
    external_ref: str | None = None  # the rail's (or platform's) refund id
    note: str = ""
    # When the attempt was first handed to its gateway (None: never sent). A sent attempt whose outcome
    # is unknown is asked about (RefundGateway.query) before it is ever sent again.
    sent_at: datetime | None = None
    rail_status: str = ""  # the rail's own word for it, as last heard (SUCCESS, PROCESSING, REFUND_SUCCESS…)
    error: RailError | None = None  # a FAILED attempt the rail refused: why


@dataclass(frozen=True, slots=True)
class DeskItem:
    """What the agents' desk holds for one case (key = case_no) or one /agent request without a case
    (key = "chat:<chat_id>"): its forum topic, its card there, and who owns it."""

    key: str
    chat_id: int  # the customer's chat
    user_id: int
    opened_at: datetime
    case_no: str | None = None
    thread_id: int | None = None  # the topic in the agents' forum group (None until created)
    card_message_id: int | None = None
    owner_id: int | None = None  # the agent who took it over (None: in the queue)
    owner_since: datetime | None = None
    owner_active_at: datetime | None = None
    reminded_at: datetime | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MessageLink:
    """A message copied between the customer's chat and the case's topic (either way), so that an
    edit of the original can update the copy."""

    key: str
    direction: str  # "to_desk" (customer -> topic) or "to_customer" (agent -> customer)
    source_chat_id: int
    source_message_id: int
    copy_chat_id: int
    copy_message_id: int | None = None  # None until the relay copied it
