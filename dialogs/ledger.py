"""The refund ledger of an order: the one place that decides how much may still go back.

The rules (README, "Money safety"):
- per order, the refunds that succeeded plus those in flight never exceed what was paid, across all
  cases and reasons of the order — checked under a lock on the order, so two approvals of two cases
  of one order are weighed one after the other;
- at most one attempt in flight per case: a new one is refused while an older one is pending or
  with the gateway (its outcome, not a guess, decides what comes next).
Every caller that starts a refund — the dialog's auto-approval, the desk, the CLI, a retry — reaches
it through `CaseWorkflow`, which calls `reserve` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from dialogs.domain import Case, RefundAttempt, RefundStatus
from dialogs.ports import UnitOfWork

IN_FLIGHT = frozenset({RefundStatus.PENDING, RefundStatus.REQUESTED})
ZERO = Decimal("0.00")


class NothingToRefund(Exception):
    """The order's paid amount is already refunded or in flight in full (or the case claims nothing)."""


class AttemptInFlight(Exception):
    """The case has a refund attempt whose outcome is not known yet: nothing new may start or end it."""

    def __init__(self, attempt: RefundAttempt) -> None:
        super().__init__(f"refund attempt {attempt.idempotency_key} ({attempt.amount} CNY) is still "
                         f"{attempt.status.value}: its outcome decides what comes next")
        self.attempt = attempt


class ExceedsRefundable(Exception):
    """A stated amount is more than the order has left to refund."""

    def __init__(self, requested: Decimal, available: Decimal) -> None:
        super().__init__(f"{requested} CNY asked, {available} CNY left to refund on the order")
        self.requested, self.available = requested, available


@dataclass(frozen=True, slots=True)
class Balance:
    """What an order paid, what went back, what is on its way."""

    paid: Decimal
    refunded: Decimal  # succeeded attempts
    in_flight: Decimal  # pending or requested attempts

    @property
    def remaining(self) -> Decimal:
        return max(ZERO, self.paid - self.refunded - self.in_flight)


def refunded(attempts: list[RefundAttempt], case_no: str | None = None) -> Decimal:
    """What the attempts (of `case_no` only, if given) paid back."""
    return sum((a.amount for a in attempts if a.status is RefundStatus.SUCCEEDED
                and (case_no is None or a.case_no == case_no)), ZERO)


def balance(paid: Decimal, attempts: list[RefundAttempt]) -> Balance:
    in_flight = sum((a.amount for a in attempts if a.status in IN_FLIGHT), ZERO)
    return Balance(paid, refunded(attempts), in_flight)


def open_attempt(attempts: list[RefundAttempt]) -> RefundAttempt | None:
    return next((a for a in reversed(attempts) if a.status in IN_FLIGHT), None)


async def order_balance(uow: UnitOfWork, order_no: str, *, lock: bool = False,
                        fallback_paid: Decimal = ZERO) -> Balance:
    """The order's balance; `lock` holds the order until the unit of work ends (take it after the
    case's lock, never before: conversation → case → order is the order every writer locks in)."""
    order = await (uow.orders.lock(order_no) if lock else uow.orders.get(order_no))
    paid = order.amount if order is not None else fallback_paid
    return balance(paid, await uow.refunds.for_order(order_no))


def paid_when_filed(case: Case) -> Decimal:
    """What the order said was paid when `case` was filed (its claim, for a case from before that was kept):
    the ledger's `paid` should the order row be gone. A correction changes the order's amount, never this."""
    return case.order_paid if case.order_paid is not None else case.amount


def case_room(case: Case, case_attempts: list[RefundAttempt], order: Balance) -> Decimal:
    """The most this case may still pay: its claim less what it got back, never more than the order
    has left."""
    return max(ZERO, min(case.amount - refunded(case_attempts), order.remaining))


async def refundable(uow: UnitOfWork, case: Case, *, lock: bool = False) -> Decimal:
    """The most an approval of `case` may pay now (0 while one of its attempts is in flight)."""
    order = await order_balance(uow, case.order_no, lock=lock, fallback_paid=paid_when_filed(case))
    attempts = await uow.refunds.for_case(case.case_no)
    if open_attempt(attempts) is not None:
        return ZERO
    return case_room(case, attempts, order)


async def reserve(uow: UnitOfWork, case: Case, *, gateway: str, at: datetime,
                  requested: Decimal | None = None, exact: bool = False) -> RefundAttempt:
    """Record the next refund attempt of `case` (PENDING, for the gateway worker), under the order's lock.

    `requested`: pay at most this (a partial approval, or a retry of a failed attempt's amount);
    None: all the case may still get. `exact`: a person stated the amount — refuse (ExceedsRefundable)
    rather than pay less than they said. Raises AttemptInFlight, NothingToRefund or ExceedsRefundable;
    nothing is written then."""
    order = await order_balance(uow, case.order_no, lock=True, fallback_paid=paid_when_filed(case))
    attempts = await uow.refunds.for_case(case.case_no)
    pending = open_attempt(attempts)
    if pending is not None:
        raise AttemptInFlight(pending)
    room = case_room(case, attempts, order)
    if room <= 0:
        raise NothingToRefund(case.case_no)
    if requested is not None and exact and requested > room:
        raise ExceedsRefundable(requested, room)
    amount = room if requested is None else min(room, requested)
    if amount <= 0:
        raise NothingToRefund(case.case_no)
    attempt = RefundAttempt(case_no=case.case_no, idempotency_key=f"{case.case_no}-{len(attempts) + 1}",
                            gateway=gateway, amount=amount, status=RefundStatus.PENDING, created_at=at)
    await uow.refunds.add(attempt)
    return attempt
