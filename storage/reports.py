"""Read-only views of cases for operators and finance: `cases list`, `cases show` and the finance
export's money facts. Plain frozen rows; nothing here changes the database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.domain import CaseStatus
from storage.models import (
    CaseEventRow,
    CaseRow,
    CaseTimerRow,
    DeskItemRow,
    EvidenceRow,
    OrderRow,
    PendingApprovalRow,
    RefundAttemptRow,
)
from storage.uow import Database


@dataclass(frozen=True, slots=True)
class CaseLine:
    """One row of `cases list`."""

    case_no: str
    status: str
    order_no: str
    user_id: int
    amount: Decimal  # what the customer asked for
    approved: Decimal | None  # the latest refund attempt's amount (None: nothing approved yet)
    reason: str
    rule_id: str
    updated_at: datetime
    owner_id: int | None  # the desk agent who took the case over


@dataclass(frozen=True, slots=True)
class EventLine:
    at: datetime
    actor: str
    from_status: str | None
    to_status: str
    note: str


@dataclass(frozen=True, slots=True)
class AttemptLine:
    idempotency_key: str
    status: str
    amount: Decimal
    gateway: str
    external_ref: str | None
    note: str
    created_at: datetime
    updated_at: datetime
    rail_status: str = ""  # the rail's own word for it, as last heard
    rail_error: str = ""  # dialogs.domain.RailError of a refused attempt


@dataclass(frozen=True, slots=True)
class EvidenceLine:
    path: str
    size: int
    mime_type: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TimerLine:
    kind: str
    due_at: datetime
    done_at: datetime | None


@dataclass(frozen=True, slots=True)
class CaseDetail:
    """Everything `cases show` prints about one case."""

    line: CaseLine
    chat_id: int
    verdict: str
    description: str
    locale: str
    created_at: datetime
    review_due: date
    credit_due: date | None
    rating: int | None
    pending_approval: Decimal | None  # waiting for a supervisor's confirm
    events: tuple[EventLine, ...]
    attempts: tuple[AttemptLine, ...]
    evidence: tuple[EvidenceLine, ...]
    timers: tuple[TimerLine, ...]
    # The delivered 卡密 the case kept when filed: `cases show` masks them unless --reveal (out of repr).
    delivered_codes: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class MoneyFacts:
    """What finance needs beside the case itself to pay a refund by hand."""

    payment_channel: str
    buyer_phone: str
    approved: Decimal | None
    trade_no: str  # the order's payment trade number on its rail ("" when the shop sent none)
    payout_ref: str  # the payout rail's reference of the latest attempt ("" when none is known)
    rail_status: str = ""  # the latest attempt's status in the rail's own word ("" when none was heard)
    rail_error: str = ""  # why the rail refused the latest attempt (dialogs.domain.RailError; "" when it did not)


def _line(row: CaseRow, approved: Decimal | None, owner_id: int | None) -> CaseLine:
    return CaseLine(case_no=row.case_no, status=row.status, order_no=row.order_no, user_id=row.user_id,
                    amount=row.amount, approved=approved, reason=row.reason, rule_id=row.rule_id,
                    updated_at=row.updated_at, owner_id=owner_id)


@dataclass(frozen=True, slots=True)
class _Latest:
    amount: Decimal
    ref: str | None
    rail_status: str | None
    error: str | None


async def _latest_attempts(session: AsyncSession, case_nos: Sequence[str]) -> dict[str, _Latest]:
    """The amount, payout reference and rail status (and refusal) of each case's latest refund attempt."""
    latest: dict[str, _Latest] = {}
    for start in range(0, len(case_nos), 500):  # bounded IN lists
        rows = await session.execute(
            select(RefundAttemptRow.case_no, RefundAttemptRow.amount, RefundAttemptRow.external_ref,
                   RefundAttemptRow.rail_status, RefundAttemptRow.error)
            .where(RefundAttemptRow.case_no.in_(case_nos[start:start + 500])).order_by(RefundAttemptRow.id))
        for case_no, amount, ref, rail_status, error in rows:
            latest[case_no] = _Latest(amount, ref, rail_status, error)  # ordered by id: the last one wins
    return latest


async def _owners(session: AsyncSession, case_nos: Sequence[str]) -> dict[str, int]:
    owners: dict[str, int] = {}
    for start in range(0, len(case_nos), 500):
        rows = await session.execute(
            select(DeskItemRow.case_no, DeskItemRow.owner_id)
            .where(DeskItemRow.case_no.in_(case_nos[start:start + 500]), DeskItemRow.owner_id.is_not(None)))
        owners.update({case_no: owner for case_no, owner in rows if case_no is not None and owner is not None})
    return owners


async def list_cases(database: Database, *, statuses: Iterable[CaseStatus] = (), order_no: str | None = None,
                     user_id: int | None = None, limit: int = 50) -> list[CaseLine]:
    """The most recently updated cases first, filtered by status (any of), order and customer."""
    query = select(CaseRow).order_by(CaseRow.updated_at.desc(), CaseRow.id.desc()).limit(limit)
    wanted = [CaseStatus(s).value for s in statuses]
    if wanted:
        query = query.where(CaseRow.status.in_(wanted))
    if order_no is not None:
        query = query.where(CaseRow.order_no == order_no)
    if user_id is not None:
        query = query.where(CaseRow.user_id == user_id)
    async with database.uow() as uow:
        rows = list((await uow.session.scalars(query)).all())
        case_nos = [row.case_no for row in rows]
        attempts = await _latest_attempts(uow.session, case_nos)
        owners = await _owners(uow.session, case_nos)
        return [_line(row, attempts[row.case_no].amount if row.case_no in attempts else None, owners.get(row.case_no))
                for row in rows]


async def case_detail(database: Database, case_no: str) -> CaseDetail | None:
    async with database.uow() as uow:
        session = uow.session
        row = await session.scalar(select(CaseRow).where(CaseRow.case_no == case_no))
        if row is None:
            return None
        events = (await session.scalars(
            select(CaseEventRow).where(CaseEventRow.case_id == row.id).order_by(CaseEventRow.id))).all()
        attempts = (await session.scalars(
            select(RefundAttemptRow).where(RefundAttemptRow.case_no == case_no).order_by(RefundAttemptRow.id))).all()
        evidence = (await session.scalars(
            select(EvidenceRow).where(EvidenceRow.case_no == case_no).order_by(EvidenceRow.id))).all()
        timers = (await session.scalars(
            select(CaseTimerRow).where(CaseTimerRow.case_no == case_no).order_by(CaseTimerRow.due_at))).all()
        owner = await session.scalar(
            select(DeskItemRow.owner_id).where(DeskItemRow.case_no == case_no, DeskItemRow.owner_id.is_not(None)))
        pending = await session.scalar(select(PendingApprovalRow.amount).where(PendingApprovalRow.case_no == case_no))
        return CaseDetail(
            line=_line(row, attempts[-1].amount if attempts else None, owner),
            chat_id=row.chat_id, verdict=row.verdict, description=row.description, locale=row.locale,
            created_at=row.created_at, review_due=row.review_due, credit_due=row.credit_due, rating=row.rating,
            pending_approval=pending,
            events=tuple(EventLine(e.at, e.actor, e.from_status, e.to_status, e.note) for e in events),
            attempts=tuple(AttemptLine(a.idempotency_key, a.status, a.amount, a.gateway, a.external_ref, a.note,
                                       a.created_at, a.updated_at, a.rail_status or "", a.error or "")
                           for a in attempts),
            evidence=tuple(EvidenceLine(e.path, e.size, e.mime_type, e.created_at) for e in evidence),
            timers=tuple(TimerLine(t.kind, t.due_at, t.done_at) for t in timers),
            delivered_codes=tuple(row.delivered_codes or ()),
        )


async def money_facts(database: Database, cases: Sequence[tuple[str, str]]) -> dict[str, MoneyFacts]:
    """For (case_no, order_no) pairs: the order's payment channel, trade number and buyer phone, the
    approved amount, payout reference, rail status and refusal of each case's latest refund attempt."""
    order_nos = sorted({order_no for _, order_no in cases})
    orders: dict[str, tuple[str, str, str]] = {}
    async with database.uow() as uow:
        attempts = await _latest_attempts(uow.session, [case_no for case_no, _ in cases])
        for start in range(0, len(order_nos), 500):
            rows = await uow.session.execute(
                select(OrderRow.order_no, OrderRow.payment_channel, OrderRow.buyer_phone, OrderRow.trade_no)
                .where(OrderRow.order_no.in_(order_nos[start:start + 500])))
            orders.update({no: (channel, phone, trade_no or "") for no, channel, phone, trade_no in rows})
    facts: dict[str, MoneyFacts] = {}
    for case_no, order_no in cases:
        channel, phone, trade_no = orders.get(order_no, ("", "", ""))
        attempt = attempts.get(case_no)
        facts[case_no] = MoneyFacts(payment_channel=channel, buyer_phone=phone,
                                    approved=attempt.amount if attempt is not None else None,
                                    trade_no=trade_no,
                                    payout_ref=(attempt.ref or "") if attempt is not None else "",
                                    rail_status=(attempt.rail_status or "") if attempt is not None else "",
                                    rail_error=(attempt.error or "") if attempt is not None else "")
    return facts
