"""The supervisors' dashboard figures (bot/dashboard): portable 2.0-style selects over the case tables.

Rows of the window are read with plain selects and bucketed by *local* day in Python: turning a UTC
timestamp into a platform-local date is dialect-specific SQL, and the windows are small (at most a
year of one platform's cases). Counts that need no day (open cases, agents' open items) are grouped in
SQL.

What each figure counts:
- open cases: every case in an open status, now, by status;
- missed deadlines: the apology the SLA sweeper queues when a review or credit date passes
  (dialogs.sla: one per missed date of a case version), on the day that was missed;
- refunds: succeeded refund attempts on the day they succeeded, summed by the order's payment channel;
- ratings: cases rated 1-5 after closing, on the day the rating was given (the case's last update);
- agents: desk actions in the window (take; approve or reject = a decision) and items held now.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from dialogs.domain import OPEN_STATUSES, PaymentChannel, RefundStatus
from dialogs.outbox import DEADLINE_MOVED
from storage.models import CaseRow, DeskAuditRow, DeskItemRow, OrderRow, OutboxRow, RefundAttemptRow
from storage.uow import Database

MAX_DAYS = 366
DECISIONS = ("approve", "reject")
DEADLINES = ("review", "credit")


@dataclass(frozen=True, slots=True)
class AgentLoad:
    agent_id: int
    taken: int  # takeovers in the window
    decided: int  # approvals and rejections in the window
    open: int  # desk items the agent holds now


@dataclass(frozen=True, slots=True)
class DashboardStats:
    days: list[date]  # the window's local days, oldest first; every per-day list below follows it
    timezone: str
    open_by_status: dict[str, int]
    missed: dict[str, list[int]]  # "review" | "credit" -> missed deadlines per day
    refunded: dict[str, list[Decimal]]  # payment channel -> refunded amount per day
    refund_counts: list[int]  # succeeded refunds per day, all channels
    rating_average: list[float | None]  # None: no rating that day
    rating_counts: list[int]
    agents: list[AgentLoad]  # by agent id


def window(days: int, now: datetime, timezone: str) -> tuple[list[date], datetime]:
    """The last `days` local days (today included) and the UTC-aware instant the first one starts."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}")
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    return [first + timedelta(days=n) for n in range(days)], datetime.combine(first, time(), zone)


def _missed_day(dedupe_key: str, fallback: date) -> date:
    # dialogs.sla keys the apology "sla:{case}:v{version}:{deadline}:{missed date}:customer".
    try:
        return date.fromisoformat(dedupe_key.split(":")[-2])
    except (IndexError, ValueError):
        return fallback


async def dashboard_stats(database: Database, *, days: int, now: datetime, timezone: str) -> DashboardStats:
    """The dashboard's figures for the last `days` local days in `timezone` (ValueError outside 1..366)."""
    day_list, since = window(days, now, timezone)
    zone = ZoneInfo(timezone)
    index = {day: n for n, day in enumerate(day_list)}

    def slot(moment: datetime) -> int | None:
        return index.get(moment.astimezone(zone).date())

    async with database.uow() as uow:
        session = uow.session
        open_rows = await session.execute(
            select(CaseRow.status, func.count()).where(CaseRow.status.in_([s.value for s in OPEN_STATUSES]))
            .group_by(CaseRow.status))
        open_by_status = {str(status): int(count) for status, count in open_rows}

        missed = {deadline: [0] * days for deadline in DEADLINES}
        # The apology is queued just after the missed day ends: a day of slack reaches the window's first day.
        breach_rows = await session.execute(
            select(OutboxRow.created_at, OutboxRow.dedupe_key, OutboxRow.payload)
            .where(OutboxRow.kind == DEADLINE_MOVED, OutboxRow.created_at >= since - timedelta(days=1)))
        for created_at, dedupe_key, payload in breach_rows:
            deadline = str(payload.get("deadline", ""))
            n = index.get(_missed_day(dedupe_key, created_at.astimezone(zone).date()))
            if deadline in missed and n is not None:
                missed[deadline][n] += 1

        refunded = {channel.value: [Decimal("0.00")] * days for channel in PaymentChannel}
        refund_counts = [0] * days
        refund_rows = await session.execute(
            select(RefundAttemptRow.updated_at, RefundAttemptRow.amount, OrderRow.payment_channel)
            .join(CaseRow, CaseRow.case_no == RefundAttemptRow.case_no)
            .join(OrderRow, OrderRow.order_no == CaseRow.order_no)
            .where(RefundAttemptRow.status == RefundStatus.SUCCEEDED.value, RefundAttemptRow.updated_at >= since))
        for succeeded_at, amount, channel in refund_rows:
            n = slot(succeeded_at)
            if n is None:
                continue
            refunded.setdefault(str(channel), [Decimal("0.00")] * days)[n] += amount
            refund_counts[n] += 1

        rating_sums, rating_counts = [0] * days, [0] * days
        rating_rows = await session.execute(
            select(CaseRow.updated_at, CaseRow.rating)
            .where(CaseRow.rating.is_not(None), CaseRow.updated_at >= since))
        for rated_at, rating in rating_rows:
            n = slot(rated_at)
            if n is not None and rating is not None:
                rating_sums[n] += rating
                rating_counts[n] += 1

        actions: dict[int, dict[str, int]] = defaultdict(lambda: {"taken": 0, "decided": 0, "open": 0})
        audit_rows = await session.execute(
            select(DeskAuditRow.actor_id, DeskAuditRow.action, func.count())
            .where(DeskAuditRow.allowed.is_(True), DeskAuditRow.at >= since,
                   DeskAuditRow.action.in_(("take", *DECISIONS)))
            .group_by(DeskAuditRow.actor_id, DeskAuditRow.action))
        for actor_id, action, count in audit_rows:
            actions[int(actor_id)]["taken" if action == "take" else "decided"] += int(count)
        held_rows = await session.execute(
            select(DeskItemRow.owner_id, func.count())
            .where(DeskItemRow.owner_id.is_not(None), DeskItemRow.closed_at.is_(None))
            .group_by(DeskItemRow.owner_id))
        for owner_id, count in held_rows:
            actions[int(owner_id)]["open"] += int(count)

    return DashboardStats(
        days=day_list, timezone=timezone, open_by_status=open_by_status, missed=missed,
        refunded=refunded, refund_counts=refund_counts,
        rating_average=[round(s / c, 2) if c else None for s, c in zip(rating_sums, rating_counts, strict=True)],
        rating_counts=rating_counts,
        agents=[AgentLoad(agent_id, **counts) for agent_id, counts in sorted(actions.items())],
    )
