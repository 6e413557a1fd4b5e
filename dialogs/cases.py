"""Moving a case through its lifecycle: the rule check, the case event, the customer's notifications,
the deadlines and the refund attempt — all in the caller's unit of work, so none exists without the
others. Who may fire a trigger (customer, agent, platform, system) is the caller's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from dialogs import ledger, sla
from dialogs.domain import (
    Case,
    CaseStatus,
    DeskItem,
    Order,
    OutboxMessage,
    PaymentChannel,
    ProductKind,
    Reason,
    Verdict,
)
from dialogs.ledger import AttemptInFlight, NothingToRefund
from dialogs.lifecycle import next_status
from dialogs.outbox import CASE_CARD, CASE_NEWS, DESK_CARD, album_rows
from dialogs.ports import UnitOfWork
from dialogs.settings import CoreSettings
from dialogs.workdays import WorkingCalendar

C = CaseStatus

# A status change gets its own message (so Telegram notifies the customer) when they must act or
# money moves; every other change only updates the card.
NEWS_STATUSES = frozenset({C.NEEDS_INFO, C.REJECTED, C.REJECTED_FINAL, C.REFUNDING, C.REFUNDED,
                           C.REFUND_FAILED, C.CLOSED, C.APPROVED})

# The agents' desk ([desk] chat_id set): a case in one of these needs a person and is put on the desk;
# in one of SETTLED it needs nobody any more and comes off (a rejection waits for an appeal, which
# brings it back). In any other status an item on the desk just has its card redrawn.
ESCALATE = frozenset({C.SUBMITTED, C.IN_REVIEW, C.APPEALED, C.REFUND_FAILED})
SETTLED = frozenset({C.REFUNDING, C.REFUNDED, C.REJECTED, C.REJECTED_FINAL, C.WITHDRAWN, C.CLOSED})

# Moves that settle money: only `settle` (dialogs/refunds.py) fires them while an attempt is in flight, with
# the gateway's (or a person's) answer for that attempt.
SETTLING = frozenset({"confirm_refund", "fail_refund"})

__all__ = ["AttemptInFlight", "CaseWorkflow", "NothingToRefund"]


@dataclass(frozen=True)
class CaseWorkflow:
    settings: CoreSettings
    calendar: WorkingCalendar
    gateway: str = "manual"  # the RefundGateway that new refund attempts go to
    # Per payment channel, another gateway (`[platform.rails]`): the money goes back on the rail it came by.
    rails: Mapping[PaymentChannel, str] = field(default_factory=dict)

    @classmethod
    def for_settings(cls, settings: CoreSettings, gateway: str = "manual",
                     rails: Mapping[PaymentChannel, str] | None = None) -> CaseWorkflow:
        calendar = WorkingCalendar(settings.policy.extra_holidays, settings.policy.extra_workdays)
        return cls(settings, calendar, gateway, dict(rails or {}))

    def gateway_for(self, order: Order | None) -> str:
        """The gateway an attempt for this order goes to: its channel's rail, else the default."""
        if order is None:
            return self.gateway
        return self.rails.get(order.payment_channel, self.gateway)

    async def filed(self, uow: UnitOfWork, case: Case, order: Order | None) -> Case:
        """A case was just added: show its card, start its review clock, auto-approve if allowed."""
        await self._notify(uow, case, None, case.created_at)
        await sla.on_enter(uow, case, case.created_at, self.settings, self.calendar, order)
        rule = self.auto_approval_rule(case, order)
        if rule is not None and await ledger.refundable(uow, case, lock=True) <= 0:
            rule = None  # the order has nothing left to refund: a person looks
        if rule is None:
            await self._desk(uow, case, case.created_at)
            return case
        case = await self.move(uow, case.case_no, "auto_approve", actor="system", at=case.created_at,
                               note=f"auto-approved by rule {rule}")
        return await self.move(uow, case.case_no, "start_refund", actor="system", at=case.created_at,
                               note=rule)

    def auto_approval_rule(self, case: Case, order: Order | None) -> str | None:
        """The rule id when a rule-eligible case's facts are confirmed by the order data."""
        auto = self.settings.auto_approve
        if (not auto.enabled or order is None or case.verdict is not Verdict.ELIGIBLE or case.wants_human
                or case.amount > auto.max_amount):
            return None
        if order.tags & set(self.settings.policy.special_tags):
            return None
        confirmed = {
            # The platform's own data says the code was never redeemed / the top-up never landed.
            Reason.CARD_INVALID: order.card_redeemed is False,
            Reason.CARD_USED: order.card_redeemed is False,
            Reason.CARD_CANNOT_ACTIVATE: order.card_redeemed is False,
            Reason.CARD_NOT_RECEIVED: order.card_redeemed is False,
            Reason.TOPUP_NOT_CREDITED: order.topup_credited is False,
            # A duplicate charge is a platform fault the policy verdict already checked.
            Reason.TOPUP_DUPLICATE: order.product_kind in (ProductKind.DIRECT_TOPUP, ProductKind.DATA_PLAN),
        }
        return case.rule_id if confirmed.get(case.reason, False) else None

    async def move(self, uow: UnitOfWork, case_no: str, trigger: str, *, actor: str, at: datetime,
                   note: str = "", amount: Decimal | None = None, exact: bool = False,
                   settling: bool = False) -> Case:
        """Apply `trigger`. Raises KeyError for an unknown case, ForbiddenTransition for a move the
        lifecycle does not allow, AttemptInFlight for a refund move while an attempt's outcome is
        unknown (only `settling`, with that outcome, may end it), and NothingToRefund /
        ExceedsRefundable when the order's ledger has no room; in all of them nothing was written.
        `amount`: a refund started by this move pays at most that much (a partial approval; `exact`:
        exactly that much or refuse)."""
        # Locked before the rule check: two moves of one case (a customer and an agent, two agents)
        # are checked one after the other, never both against the same old status.
        case = await uow.cases.get(case_no, for_update=True)
        if case is None:
            raise KeyError(case_no)
        status = next_status(case.status, trigger)
        if trigger in SETTLING and not settling:
            pending = ledger.open_attempt(await uow.refunds.for_case(case_no))
            if pending is not None:
                raise AttemptInFlight(pending)
        if status is C.REFUNDING:  # the attempt first: refused by the ledger, nothing else is written
            await self._start_refund(uow, case, at, amount, exact)
        moved = await uow.cases.set_status(case_no, status, actor=actor, at=at, note=note)
        await self._notify(uow, moved, case.status, at, note)
        await self._desk(uow, moved, at)
        order = await uow.orders.get(moved.order_no)
        await sla.on_enter(uow, moved, at, self.settings, self.calendar, order)
        return moved

    async def approve(self, uow: UnitOfWork, case_no: str, *, actor: str, at: datetime, note: str = "",
                      amount: Decimal | None = None) -> Case:
        """An agent's (or arbiter's) approval: the money goes back on its way at once. `amount`: a
        partial refund, exactly that much or refused (ExceedsRefundable); None: all the case may still
        get. Nothing is written when the ledger refuses (checked before the approval is recorded)."""
        case = await uow.cases.get(case_no, for_update=True)
        if case is None:
            raise KeyError(case_no)
        next_status(case.status, "approve")  # ForbiddenTransition before anything else
        room = await ledger.refundable(uow, case, lock=True)
        if room <= 0:
            raise NothingToRefund(case_no)
        if amount is not None and amount > room:
            raise ledger.ExceedsRefundable(amount, room)
        await self.move(uow, case_no, "approve", actor=actor, at=at, note=note)
        return await self.move(uow, case_no, "start_refund", actor="system", at=at, amount=amount,
                               exact=amount is not None)

    async def _notify(self, uow: UnitOfWork, case: Case, previous: CaseStatus | None, at: datetime,
                      note: str = "") -> None:
        # One row per (case, version, kind): a retried transaction or a replayed callback cannot
        # queue the same news twice. The card is rendered from the case as it is at send time.
        key = f"case:{case.case_no}:v{case.version}"
        await uow.outbox.add(OutboxMessage(kind=CASE_CARD, chat_id=case.chat_id, dedupe_key=f"{key}:card",
                                           payload={"case_no": case.case_no}, created_at=at))
        if case.status in NEWS_STATUSES:
            await uow.outbox.add(OutboxMessage(
                kind=CASE_NEWS, chat_id=case.chat_id, dedupe_key=f"{key}:news",
                payload={"case_no": case.case_no, "from": previous.value if previous else None,
                         "to": case.status.value, "note": note},
                created_at=at))

    async def _desk(self, uow: UnitOfWork, case: Case, at: datetime) -> None:
        """Put the case on the agents' desk, redraw its card there, or take it off (the card then shows
        the outcome). A case on the desk with evidence not shown there yet (at first, or more after
        needs_info or an appeal) gets it in the topic, after the card."""
        desk_chat = self.settings.desk.chat_id
        if not desk_chat:
            return
        escalate = case.status in ESCALATE
        if escalate:
            await uow.desk.open(DeskItem(key=case.case_no, chat_id=case.chat_id, user_id=case.user_id,
                                         opened_at=at, case_no=case.case_no))
        else:
            item = await uow.desk.get(case.case_no)
            if item is None or item.closed_at is not None:
                return
            if case.status in SETTLED:
                await uow.desk.close(case.case_no, at=at)
        await uow.outbox.add(OutboxMessage(kind=DESK_CARD, chat_id=desk_chat, payload={"key": case.case_no},
                                           dedupe_key=f"desk:{case.case_no}:v{case.version}:card", created_at=at))
        if escalate:  # one album per evidence count: shown again (all of it) only when files were added
            for row in album_rows(case, desk_chat, at, f"n{len(case.evidence)}"):
                await uow.outbox.add(row)

    async def _start_refund(self, uow: UnitOfWork, case: Case, at: datetime, requested: Decimal | None,
                            exact: bool) -> None:
        """Record the refund attempt the gateway worker will carry out (the ledger decides how much).
        A retry without an amount asks for what the failed attempt before it asked for."""
        if requested is None:
            attempts = await uow.refunds.for_case(case.case_no)
            if attempts:
                requested = attempts[-1].amount
        gateway = self.gateway_for(await uow.orders.get(case.order_no)) if self.rails else self.gateway
        await ledger.reserve(uow, case, gateway=gateway, at=at, requested=requested, exact=exact)
