"""The CSV export for finance (`refundbot cases export`): one row per case, with what its refund
attempts paid back."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TextIO
from zoneinfo import ZoneInfo

from dialogs.domain import CaseStatus
from dialogs.ledger import refunded
from dialogs.ports import UnitOfWorkFactory

EXPORT_COLUMNS = ("case_no", "order_no", "user", "reason", "verdict", "rule_id", "amount", "refunded_amount",
                  "status", "created_at", "review_due", "credit_due", "rating")


def local_range(since: date | None, until: date | None, timezone: str) -> tuple[datetime | None, datetime | None]:
    """Inclusive local dates → [start, end) instants: `until` 2026-11-30 includes that whole day."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(since, datetime.min.time(), zone) if since is not None else None
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), zone) if until is not None else None
    return start, end


async def export_cases(uow_factory: UnitOfWorkFactory, out: TextIO, *, statuses: Iterable[CaseStatus] = (),
                       since: datetime | None = None, until: datetime | None = None,
                       timezone: str = "Asia/Shanghai") -> int:
    """Write a CSV (header + one row per case created in [since, until), oldest first) for finance;
    returns the number of cases. Times are shown in `timezone`; refunded_amount sums the attempts
    that paid out."""
    zone = ZoneInfo(timezone)
    async with uow_factory() as uow:
        cases = await uow.cases.search(statuses=tuple(statuses), since=since, until=until)
        paid_back: dict[str, Decimal] = {}
        for case in cases:
            attempts = await uow.refunds.for_case(case.case_no)
            paid_back[case.case_no] = refunded(attempts)
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for case in cases:
        writer.writerow([
            case.case_no, case.order_no, case.user_id, case.reason.value, case.verdict.value, case.rule_id,
            f"{case.amount:.2f}", f"{paid_back[case.case_no]:.2f}", case.status.value,
            case.created_at.astimezone(zone).isoformat(timespec="seconds"), case.review_due.isoformat(),
            case.credit_due.isoformat() if case.credit_due else "", case.rating if case.rating is not None else "",
        ])
    return len(cases)
