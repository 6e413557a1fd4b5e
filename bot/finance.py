"""The export for finance (`refundbot cases export`): one row per case, with what its refund attempts
approved and paid back and what finance needs to pay by hand (the order's payment channel, the buyer's
contact, the order's trade number, the payout reference and what the rail said of it), as CSV or XLSX."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO
from zoneinfo import ZoneInfo

from dialogs.domain import CaseStatus
from dialogs.ledger import refunded

if TYPE_CHECKING:
    from storage.uow import Database

# New columns go at the end: spreadsheets and scripts that read the older columns by position keep working.
EXPORT_COLUMNS = ("case_no", "order_no", "user", "reason", "verdict", "rule_id", "amount", "refunded_amount",
                  "status", "created_at", "review_due", "credit_due", "rating",
                  "payment_channel", "buyer_contact", "approved_amount", "trade_no",
                  "payout_ref", "rail_status", "rail_error")
MONEY_COLUMNS = frozenset({"amount", "refunded_amount", "approved_amount"})


def local_range(since: date | None, until: date | None, timezone: str) -> tuple[datetime | None, datetime | None]:
    """Inclusive local dates → [start, end) instants: `until` 2026-11-30 includes that whole day."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(since, datetime.min.time(), zone) if since is not None else None
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), zone) if until is not None else None
    return start, end


def mask_contact(contact: str) -> str:
    """138****5678 for a phone number, a***@qq.com for an e-mail address; never more than a hint."""
    contact = contact.strip()
    if not contact:
        return ""
    if "@" in contact:
        name, _, domain = contact.partition("@")
        return f"{name[:1]}***@{domain}"
    digits = re.sub(r"\D", "", contact)
    if len(digits) == 13 and digits.startswith("86"):  # +86 before a mainland mobile number
        digits = digits[2:]
    if len(digits) >= 7:
        return f"{digits[:3]}****{digits[-4:]}"
    return "*" * len(contact)


@dataclass(frozen=True, slots=True)
class Export:
    header: tuple[str, ...]
    rows: list[list[Any]]  # money as Decimal (two places) or None; everything else as text


async def export_rows(database: Database, *, statuses: Iterable[CaseStatus] = (), since: datetime | None = None,
                      until: datetime | None = None, timezone: str = "Asia/Shanghai",
                      full_contact: bool = False) -> Export:
    """One row per case created in [since, until), oldest first. Times are shown in `timezone`;
    refunded_amount sums the attempts that paid out; trade_no is the order's payment number on its rail;
    approved_amount, payout_ref (the rail's refund id), rail_status (the rail's own word) and rail_error (why
    the rail refused it) are the latest attempt's; buyer_contact is masked unless `full_contact`."""
    from storage.reports import money_facts

    zone = ZoneInfo(timezone)
    async with database.uow() as uow:
        cases = await uow.cases.search(statuses=tuple(statuses), since=since, until=until)
        paid_back: dict[str, Decimal] = {}
        for case in cases:
            paid_back[case.case_no] = refunded(await uow.refunds.for_case(case.case_no))
    facts = await money_facts(database, [(case.case_no, case.order_no) for case in cases])
    rows: list[list[Any]] = []
    for case in cases:
        fact = facts[case.case_no]
        rows.append([
            case.case_no, case.order_no, str(case.user_id), case.reason.value, case.verdict.value, case.rule_id,
            case.amount, paid_back[case.case_no], case.status.value,
            case.created_at.astimezone(zone).isoformat(timespec="seconds"), case.review_due.isoformat(),
            case.credit_due.isoformat() if case.credit_due else "", str(case.rating) if case.rating is not None else "",
            fact.payment_channel, fact.buyer_phone if full_contact else mask_contact(fact.buyer_phone),
            fact.approved, fact.trade_no, fact.payout_ref, fact.rail_status, fact.rail_error,
        ])
    return Export(EXPORT_COLUMNS, rows)


def write_csv(export: Export, out: TextIO) -> None:
    writer = csv.writer(out)
    writer.writerow(export.header)
    money = [i for i, name in enumerate(export.header) if name in MONEY_COLUMNS]
    for row in export.rows:
        writer.writerow([_csv_money(value) if i in money else value for i, value in enumerate(row)])


def _csv_money(value: Decimal | None) -> str:
    return f"{value:.2f}" if value is not None else ""


def write_xlsx(export: Export, out: str | BinaryIO) -> None:
    """One sheet: a bold, frozen header row; amounts as numbers shown with two decimals."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new workbook always has its first sheet
    sheet.title = "cases"
    sheet.append(list(export.header))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    money = [i for i, name in enumerate(export.header) if name in MONEY_COLUMNS]
    for row in export.rows:
        sheet.append(row)
    for i in money:
        for (cell,) in sheet.iter_rows(min_row=2, min_col=i + 1, max_col=i + 1):
            cell.number_format = "0.00"
    for i, name in enumerate(export.header, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=i).column_letter].width = max(12, len(name) + 2)
    book.save(out)

