"""The ports the core needs, as narrow Protocols named by role.

Implementations live in storage/ (SQLAlchemy) and bot/ (HTTP); test doubles are `Fake*`.
Repositories never commit: the unit of work does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Literal, Protocol, Self

from dialogs.domain import (
    AgentRequest,
    Case,
    CaseStatus,
    Conversation,
    Delivery,
    DeskItem,
    EvidenceItem,
    MessageLink,
    Order,
    OutboxMessage,
    PaymentChannel,
    RailError,
    Reason,
    RefundAttempt,
    RefundStatus,
    Timer,
    TimerKind,
)
from dialogs.io import Reply


class OrderLookup(Protocol):
    async def get(self, order_no: str) -> Order | None:
        """None: no such order. Raises OrderSourceUnavailable when the source cannot tell just now."""
        ...


class FloodCheck(Protocol):
    """Updates per chat across the bot's workers (bot.pacing.flood); without one each worker counts
    alone (dialogs.service.FloodGuard)."""

    async def check(self, chat_id: int) -> str:
        """'ok', 'notify' (the first update over the limit) or 'drop'."""
        ...


class OrderSourceUnavailable(Exception):
    """The order source (the platform's API) did not answer usefully: the order is unknown, which is
    not the same as "no such order"."""


class OrderStore(OrderLookup, Protocol):
    async def lock(self, order_no: str) -> Order | None:
        """The order, locked until the unit of work ends (row lock on PostgreSQL; SQLite's writer
        transactions are serial already): the money rules of one order are checked one at a time."""
        ...

    async def upsert(self, order: Order, *, facts: FactsMode = "refuse") -> bool:
        """Insert or replace by order_no; True when inserted, False when updated. An order with cases
        keeps its money and identity facts (dialogs.order_facts): `facts` says how (FactsLocked,
        keep the stored ones, or an audited correction's change)."""
        ...

    async def upsert_many(self, orders: Sequence[Order]) -> BulkUpsert:
        """Upsert a batch (a later repeat of an order number wins); a row that would change the facts
        of an order with cases is left out and named in `refused`."""
        ...


# How an upsert treats the facts of an order that has cases (dialogs.order_facts).
FactsMode = Literal["refuse", "keep", "correct"]


@dataclass(frozen=True, slots=True)
class BulkUpsert:
    inserted: int
    updated: int
    refused: tuple[tuple[int, tuple[str, ...]], ...] = ()  # (index in the batch, the facts it would change)


@dataclass(frozen=True, slots=True)
class LookupTally:
    """Failed phone-digit checks of one order number as typed, from any chat, existing order or not
    (so a pause says nothing about whether the order exists)."""

    order_no: str
    window_start: datetime  # the first failure of the current window
    failures: int  # within the current window
    last_failed_at: datetime | None  # None: none yet


class LookupFailures(Protocol):
    """Failed guesses per order number: N chats together get `max_failed_lookups` guesses, not N times as many."""

    async def get(self, order_no: str) -> LookupTally | None:
        """The number's tally, not locked (None: nothing on record)."""
        ...

    async def lock(self, order_no: str, *, now: datetime) -> LookupTally:
        """The number's tally, locked until the unit of work ends (an empty one is created if there is
        none): two chats checking digits for one number take turns, so neither slips under the limit."""
        ...

    async def record(self, order_no: str, *, at: datetime, window: timedelta, forget_before: datetime) -> LookupTally:
        """Count one failure and return the tally: a window older than `window` starts again at 1.
        Tallies untouched since `forget_before` are dropped on the way (the table stays small)."""
        ...


class CaseRepository(Protocol):
    async def next_case_no(self, day: str) -> str:
        """Allocate the next readable number of a day, e.g. 'R20261124-0001' for day '20261124'."""
        ...

    async def add(self, case: Case) -> None: ...

    async def get(self, case_no: str, *, for_update: bool = False) -> Case | None:
        """`for_update`: lock the case row until the unit of work ends (before checking a move)."""
        ...

    async def find_open(self, order_no: str, reason: Reason) -> Case | None: ...

    async def for_order(self, order_no: str) -> list[Case]:
        """Every case of an order, oldest first (without their evidence)."""
        ...

    async def list_for_user(self, user_id: int, limit: int = 20) -> list[Case]: ...

    async def set_status(
        self, case_no: str, status: CaseStatus, *, actor: str, at: datetime | None = None, note: str = ""
    ) -> Case:
        """Move a case and log the event (who, when, from, to, note); returns the case as stored now.
        Raises KeyError for an unknown case, ConcurrentUpdate when it would reopen a second open
        case for the same order and reason. Lifecycle rules are checked by the caller."""
        ...

    async def log(self, case_no: str, *, actor: str, at: datetime, note: str) -> None:
        """An event in the case's history that does not move it (from and to are its status): a desk
        action such as a takeover or a private note. Raises KeyError for an unknown case."""
        ...

    async def set_due(self, case_no: str, *, review_due: date | None = None, credit_due: date | None = None) -> None:
        """Move the review and/or credit deadline (None leaves that one as it is)."""
        ...

    async def set_status_message(self, case_no: str, message_id: int | None) -> None:
        """Remember (or forget, with None) the message id of the customer's status card."""
        ...

    async def rate(self, case_no: str, rating: int, comment: str | None) -> None: ...

    async def search(self, *, statuses: Iterable[CaseStatus] = (), since: datetime | None = None,
                     until: datetime | None = None, limit: int | None = None) -> list[Case]:
        """Cases created in [since, until) with one of `statuses` (all when empty), oldest first."""
        ...

    async def count_by_status(self) -> dict[CaseStatus, int]: ...


class ConversationRepository(Protocol):
    async def load(self, chat_id: int) -> Conversation | None:
        """Load and lock the conversation of a chat for the rest of the unit of work."""
        ...

    async def save(self, conversation: Conversation) -> None:
        """Insert or update; raises `ConcurrentUpdate` if the version moved since `load`."""
        ...

    async def settle_replies(self, chat_id: int, update_id: int, left: Sequence[Reply]) -> None:
        """Telegram has taken the replies to `update_id` but `left` (none: all): keep only those, if the
        conversation still holds that update's replies."""
        ...


class EvidenceRepository(Protocol):
    async def add_draft(self, draft_id: str, chat_id: int, item: EvidenceItem) -> bool:
        """Store a draft's evidence row; False when that file_unique_id is already in the draft."""
        ...

    async def list_draft(self, draft_id: str) -> list[EvidenceItem]: ...

    async def attach(self, draft_id: str, case_no: str) -> int:
        """Bind the draft's evidence to the filed case; returns the number of rows bound."""
        ...

    async def prune_drafts(self, before: datetime) -> int:
        """Delete the rows of drafts never filed whose last file came before `before`; returns how many."""
        ...

    async def stored_digests(self) -> set[str]:
        """The sha256 of every file an evidence row (a draft's or a case's) still names."""
        ...


class UpdateLedger(Protocol):
    async def claim(self, update_id: int, chat_id: int, at: datetime) -> bool:
        """Record an update id; False when it was claimed before (a repeated delivery)."""
        ...

    async def prune(self, before: datetime) -> int:
        """Forget claims older than `before` (Telegram may restart update ids after a quiet week)."""
        ...


class AgentRequests(Protocol):
    async def add(self, request: AgentRequest) -> None: ...

    async def count_for_chat(self, chat_id: int) -> int: ...


class Outbox(Protocol):
    async def add(self, message: OutboxMessage) -> bool:
        """Queue a notification; False when its dedupe_key is already queued."""
        ...

    async def claim(self, *, owner: str, now: datetime, lease_seconds: float, limit: int) -> list[Delivery]:
        """Take up to `limit` due, unsent rows that no other relay holds (or whose lease ran out),
        oldest first and only the oldest open row of each chat (a chat's rows go in order). Two
        relays on one database never get the same row while a lease lasts."""
        ...

    async def mark_sent(self, delivery_id: int, *, at: datetime, message_id: int | None) -> None: ...

    async def defer(self, delivery_id: int, *, until: datetime, error: str) -> None:
        """Release the claim and try again at `until` (counts an attempt)."""
        ...

    async def give_up(self, delivery_id: int, *, at: datetime, error: str) -> None:
        """Never send this row (e.g. Telegram rejected the message)."""
        ...

    async def hold(self, delivery_id: int, *, error: str) -> None:
        """Release the claim and keep the row unsent until `release_held` for its chat (the chat blocked
        the bot, or the bot left the group): it and the chat's later rows wait, in order."""
        ...

    async def release_held(self, chat_id: int, *, at: datetime) -> int:
        """The chat's held rows are due again from `at`; returns how many there were."""
        ...

    async def backlog(self) -> int:
        """Rows neither sent, given up nor held, nor of a held chat (those wait on the chat, not on us)."""
        ...


class ChatDirectory(Protocol):
    """Chats the bot cannot write to now (403: blocked by the user, kicked from the group)."""

    async def mark_blocked(self, chat_id: int, *, at: datetime, reason: str) -> bool:
        """Record the chat as blocked; False when it already was (the same episode)."""
        ...

    async def unblock(self, chat_id: int) -> bool:
        """The user wrote again, or the bot is back in the group; False when it was not blocked."""
        ...

    async def blocked(self, chat_ids: Iterable[int]) -> set[int]: ...


class Timers(Protocol):
    async def schedule(self, case_no: str, kind: TimerKind, due_at: datetime, *, version: int) -> bool:
        """Set a timer for this case version; False when (case, kind, version, due_at) is already set."""
        ...

    async def cancel(self, case_no: str, kinds: Iterable[TimerKind] = ()) -> int:
        """Drop a case's pending timers (of these kinds; all when empty); returns how many."""
        ...

    async def claim_due(self, *, owner: str, now: datetime, lease_seconds: float, limit: int) -> list[Timer]: ...

    async def done(self, timer_id: int, *, at: datetime) -> None: ...

    async def pending(self, case_no: str) -> list[tuple[TimerKind, datetime]]:
        """A case's timers not yet fired, soonest first."""
        ...


class RefundLedger(Protocol):
    async def add(self, attempt: RefundAttempt) -> bool:
        """Record an attempt; False when its idempotency key is already recorded."""
        ...

    async def for_case(self, case_no: str) -> list[RefundAttempt]:
        """Oldest first."""
        ...

    async def for_order(self, order_no: str) -> list[RefundAttempt]:
        """The attempts of every case of an order, oldest first."""
        ...

    async def get(self, idempotency_key: str) -> RefundAttempt | None:
        ...

    async def set_status(self, idempotency_key: str, status: RefundStatus, *, at: datetime,
                         external_ref: str | None = None, note: str = "", rail_status: str | None = None,
                         error: RailError | None = None) -> None:
        """Any status but PENDING also ends a worker's hold on the attempt (see claim_pending).
        `external_ref` and `rail_status` are kept as they were when None."""
        ...

    async def mark_sent(self, idempotency_key: str, at: datetime) -> None:
        """The attempt is about to go to its gateway: from now on its outcome is asked about (query)
        before it is ever sent again. Keeps the first time."""
        ...

    async def pending(self, limit: int = 100) -> list[RefundAttempt]:
        """Attempts recorded but not yet sent to the gateway (a crash may have left some), held or not."""
        ...

    async def claim_pending(self, *, gateway: str, owner: str, now: datetime, lease_seconds: float,
                            limit: int) -> list[RefundAttempt]:
        """Take up to `limit` PENDING attempts of `gateway` that nobody holds (or whose hold or
        not-before ran out by `now`), oldest first, and hold them for `owner` for `lease_seconds`.
        Two workers on one database never get the same attempt while a lease lasts."""
        ...

    async def release(self, idempotency_key: str, *, owner: str, until: datetime | None = None) -> bool:
        """Give up `owner`'s hold on a pending attempt; with `until`, nobody may claim it before
        then (a backoff). False when `owner` no longer holds it (its lease ran out and another
        worker took it, or it was settled)."""
        ...


class NonceLedger(Protocol):
    async def remember(self, signature: str, at: datetime) -> bool:
        """False when this signature was seen before (a replayed callback)."""
        ...

    async def prune(self, before: datetime) -> int: ...


@dataclass(frozen=True, slots=True)
class CaseEventRecord:
    """One move of a case as the desk card lists it."""

    at: datetime
    actor: str
    from_status: str | None
    to_status: str
    note: str = ""


class DeskRepository(Protocol):
    """The agents' desk: one item per case (or per /agent request without a case)."""

    async def get(self, key: str, *, for_update: bool = False) -> DeskItem | None: ...

    async def open(self, item: DeskItem) -> bool:
        """Put an item in the queue; False when it is there already (then nothing changes)."""
        ...

    async def close(self, key: str, *, at: datetime) -> None:
        """The item needs no agent any more (case decided, request answered): off the queue."""
        ...

    async def owned_in_chat(self, chat_id: int) -> DeskItem | None:
        """The customer chat's item an agent has taken over, if any (the bot keeps quiet there)."""
        ...

    async def by_thread(self, thread_id: int) -> DeskItem | None: ...

    async def set_topic(self, key: str, *, thread_id: int | None, card_message_id: int | None) -> None:
        """Remember (or, with None, forget) the item's topic and its card there."""
        ...

    async def take(self, key: str, agent_id: int, *, at: datetime) -> int | None:
        """Claim the item for `agent_id` if nobody owns it (an atomic compare-and-set): returns the
        owner afterwards — `agent_id` when this call won, someone else's id when they were first."""
        ...

    async def release(self, key: str, *, at: datetime) -> None: ...

    async def touch(self, key: str, *, at: datetime) -> None:
        """The owner did something: their idle clock starts again."""
        ...

    async def mark_reminded(self, key: str, *, at: datetime) -> None: ...

    async def idle_owned(self, before: datetime) -> list[DeskItem]:
        """Owned, open items whose owner has done nothing since `before`."""
        ...

    async def queue(self, limit: int = 50) -> list[tuple[DeskItem, Case | None]]:
        """Open items with their cases, the soonest review deadline first (requests without a case
        by age)."""
        ...

    async def audit(self, *, actor_id: int, key: str | None, action: str, allowed: bool, at: datetime,
                    detail: str = "") -> None:
        """Record a desk action or a refused attempt (who, when, what)."""
        ...

    async def refused_attempts(self, actor_id: int) -> int: ...

    async def add_link(self, link: MessageLink) -> bool:
        """False when this source message was linked in this direction already."""
        ...

    async def set_link_copy(self, source_chat_id: int, source_message_id: int, direction: str,
                            copy_message_id: int) -> None: ...

    async def find_link(self, source_chat_id: int, source_message_id: int, direction: str) -> MessageLink | None: ...

    async def request_approval(self, case_no: str, *, amount: Decimal, agent_id: int, at: datetime) -> None:
        """An approval above the threshold waits for a second person (replaces an earlier request)."""
        ...

    async def pending_approval(self, case_no: str) -> tuple[Decimal, int] | None:
        """(amount, requesting agent) of a waiting approval."""
        ...

    async def clear_approval(self, case_no: str) -> None: ...

    async def history(self, case_no: str, limit: int = 12) -> list[CaseEventRecord]:
        """The case's latest `limit` events, oldest first (the desk card's history)."""
        ...

    async def queued_after(self, chat_id: int, after_id: int, limit: int = 200) -> list[Delivery]:
        """Outbox rows of `chat_id` queued after row `after_id`, neither sent nor given up, in order:
        the relay looks ahead to batch a topic's waiting copies and to skip cards a later row redraws."""
        ...

    async def delivered_as(self, chat_id: int, message_id: int, kinds: Iterable[str]) -> list[Delivery]:
        """Rows of these kinds sent to `chat_id` as (or onto) message `message_id`, in order: the
        messages a quoted batch holds and the edits made to it since."""
        ...


@dataclass(frozen=True, slots=True)
class StaffMember:
    """Someone the desk knows: an agent or a supervisor (supervisors are agents too). A removed member
    keeps the row (so the TOML seed never brings them back, and their alias still names them)."""

    user_id: int
    role: str  # "agent" | "supervisor"
    alias: str | None
    added_by: str
    added_at: datetime
    removed_at: datetime | None = None
    removed_by: str | None = None


@dataclass(frozen=True, slots=True)
class StaffChange:
    """One line of the staff audit: who changed whom, how, when."""

    at: datetime
    user_id: int
    action: str  # "add" | "remove" | "seed"
    role: str
    alias: str | None
    by: str


class StaffDirectory(Protocol):
    """The desk's agents and supervisors, and the audit of every change to them."""

    async def members(self, *, removed: bool = False) -> list[StaffMember]:
        """The current members in the order they were first added (with `removed`, the removed too)."""
        ...

    async def put(self, member: StaffMember, *, action: str) -> None:
        """Insert or replace the member's row (a re-added member is current again) and audit it."""
        ...

    async def remove(self, user_id: int, *, by: str, at: datetime) -> bool:
        """Mark a current member removed (False: not one) and audit it."""
        ...

    async def changes(self, limit: int = 50) -> list[StaffChange]:
        """The latest changes, newest first."""
        ...


@dataclass(frozen=True, slots=True)
class Restriction:
    """A customer the desk banned (until None) or muted (until the mute ends)."""

    chat_id: int
    kind: str  # "ban" | "mute"
    reason: str
    by: str
    at: datetime
    until: datetime | None = None
    noticed_at: datetime | None = None  # when the customer was last told

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until


class Moderation(Protocol):
    """Banned and muted customers, one row per chat (looked up by its key on every customer update)."""

    async def get(self, chat_id: int) -> Restriction | None: ...

    async def put(self, restriction: Restriction) -> None:
        """Insert or replace the chat's restriction."""
        ...

    async def lift(self, chat_id: int) -> bool:
        """Remove the chat's restriction (False: there was none)."""
        ...

    async def noticed(self, chat_id: int, *, at: datetime) -> None: ...


class UnitOfWork(Protocol):
    orders: OrderStore
    cases: CaseRepository
    conversations: ConversationRepository
    evidence: EvidenceRepository
    updates: UpdateLedger
    agent_requests: AgentRequests
    outbox: Outbox
    chats: ChatDirectory
    timers: Timers
    refunds: RefundLedger
    nonces: NonceLedger
    desk: DeskRepository
    lookups: LookupFailures
    staff: StaffDirectory
    moderation: Moderation

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back whatever was not committed."""
        ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class ConcurrentUpdate(Exception):
    """Another worker saved the same conversation first; the caller retries the update."""


# --- paying the money back ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Payment:
    """What a gateway needs besides the attempt: the purchase being paid back."""

    order_no: str  # the shop's order number: the rail's out_trade_no
    paid: Decimal  # what the purchase cost in total (WeChat Pay wants it beside the refund amount)
    trade_no: str | None = None  # the rail's own number for the purchase (Order.trade_no), when known
    channel: PaymentChannel | None = None  # None: the order is not in our books (only its number is)

    @classmethod
    def of(cls, order_no: str, order: Order | None, fallback_paid: Decimal) -> Payment:
        if order is None:
            return cls(order_no=order_no, paid=fallback_paid)
        return cls(order_no=order_no, paid=order.amount, trade_no=order.trade_no, channel=order.payment_channel)


@dataclass(frozen=True, slots=True)
class GatewayResult:
    """What a refund gateway said about one attempt.

    status: REQUESTED (accepted, the money lands later and a callback or finance confirms it),
    SUCCEEDED (paid) or FAILED (refused, `reason` says why). PENDING is never a result.
    """

    status: RefundStatus
    external_ref: str | None = None  # the rail's refund id
    reason: str = ""
    rail_status: str = ""  # the rail's own status word, kept on the attempt for finance and reconciliation
    error: RailError | None = None  # with FAILED: why, in shared words
    amount: Decimal | None = None  # what the rail says it refunded (or will), when it says (reconciliation)


class GatewayUnavailable(Exception):
    """Nothing is known about the payout (network error, timeout, 5xx, 429): call again later with
    the same attempt; its idempotency key keeps the platform from paying twice."""


class RailBusy(GatewayUnavailable):
    """The rail answered but cannot pay now (the merchant balance is too low): nothing was paid; try
    again later with the same attempt, and tell the supervisors."""

    error = RailError.BALANCE_LOW


class RefundGateway(Protocol):
    """Pays a recorded refund attempt back on the order's original payment route."""

    name: str  # the RefundAttempt.gateway this gateway handles ("manual", "http", "alipay", …)

    async def refund(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult:
        """Ask for the payout of `attempt` (exactly its amount, under its idempotency key).
        Raises GatewayUnavailable when the outcome is unknown (RailBusy: the rail cannot pay now)."""
        ...

    async def query(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult | None:
        """What the rail knows of an attempt that was sent before with an unknown outcome (a timeout, a
        crash), asked before it is ever sent again: a result to record, or None when the rail has no
        such refund (then, and only then, it is sent again under the same key). A gateway whose other
        side deduplicates by key itself may answer None. Raises GatewayUnavailable when it cannot tell."""
        ...

    async def close(self) -> None:
        ...
