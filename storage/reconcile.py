"""What the books say for reconciliation (bot/reconcile.py): the refund attempts of a window, each with
the purchase it pays back, and per order what the books count as paid back in all. Read-only."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select

from dialogs.domain import PaymentChannel, RefundAttempt, RefundStatus
from dialogs.ports import Payment
from storage.models import CaseRow, OrderRow, RefundAttemptRow
from storage.platform import _attempt
from storage.uow import Database


@dataclass(frozen=True, slots=True)
class BookedAttempt:
    attempt: RefundAttempt
    payment: Payment  # what a gateway is asked with (the order's trade number, what it cost)


async def attempts_between(database: Database, since: datetime | None, until: datetime | None,
                           gateways: Collection[str] = ()) -> list[BookedAttempt]:
    """The attempts created in [since, until) (either end open when None), of `gateways` (any when
    empty), oldest first, each with its purchase (the case's amount as what was paid when the order is
    not in the books)."""
    query = (select(RefundAttemptRow, CaseRow.order_no, CaseRow.amount, OrderRow.amount, OrderRow.trade_no,
                    OrderRow.payment_channel)
             .join(CaseRow, CaseRow.case_no == RefundAttemptRow.case_no)
             .outerjoin(OrderRow, OrderRow.order_no == CaseRow.order_no)
             .order_by(RefundAttemptRow.created_at, RefundAttemptRow.id))
    if since is not None:
        query = query.where(RefundAttemptRow.created_at >= since)
    if until is not None:
        query = query.where(RefundAttemptRow.created_at < until)
    if gateways:
        query = query.where(RefundAttemptRow.gateway.in_(sorted(gateways)))
    booked: list[BookedAttempt] = []
    async with database.uow() as uow:
        for row, order_no, asked, paid, trade_no, channel in (await uow.session.execute(query)).all():
            payment = Payment(order_no=order_no, paid=asked) if paid is None else Payment(
                order_no=order_no, paid=paid, trade_no=trade_no, channel=PaymentChannel(channel))
            booked.append(BookedAttempt(_attempt(row), payment))
    return booked


async def booked_refunded(database: Database, order_nos: Sequence[str]) -> dict[str, Decimal]:
    """Per order: the sum of its succeeded refund attempts, whenever made and on whichever gateway."""
    totals: dict[str, Decimal] = {}
    async with database.uow() as uow:
        for start in range(0, len(order_nos), 500):  # bounded IN lists
            rows = await uow.session.execute(
                select(CaseRow.order_no, func.sum(RefundAttemptRow.amount))
                .join(CaseRow, CaseRow.case_no == RefundAttemptRow.case_no)
                .where(CaseRow.order_no.in_(order_nos[start:start + 500]),
                       RefundAttemptRow.status == RefundStatus.SUCCEEDED.value)
                .group_by(CaseRow.order_no))
            totals.update({order_no: Decimal(total) for order_no, total in rows})
    return totals
