"""`refundbot cases list`, `cases show` and `cases export`: what operators look at before they decide, and
what finance pays from (read-only)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from bot.cli_base import ConfigOption, console, load_settings, on_database, person_named
from dialogs.domain import CaseStatus

if TYPE_CHECKING:
    from bot.config import AppConfig
    from storage.reports import CaseDetail
    from storage.uow import Database

EXIT_BAD_ARGUMENTS = 2
EXIT_UNKNOWN_CASE = 3  # as for every `cases` command


def _money(amount: Decimal | None) -> str:
    return f"{amount:.2f}" if amount is not None else "-"


def _when(at: datetime | None, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if at is not None else "-"


def parse_statuses(status: list[str] | None) -> list[CaseStatus]:
    try:
        return [CaseStatus(s.strip().lower()) for s in status or ()]
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]; statuses: {', '.join(s.value for s in CaseStatus)}")
        raise typer.Exit(EXIT_BAD_ARGUMENTS) from exc


def register(cases_app: typer.Typer) -> None:
    cases_app.command("list")(cases_list)
    cases_app.command("show")(cases_show)
    cases_app.command("export")(cases_export)


def cases_list(
    status: Annotated[list[str] | None, typer.Option("--status", "-s", help="Only these statuses (repeatable).")] = None,
    order: Annotated[str | None, typer.Option("--order", help="Only this order number.")] = None,
    user: Annotated[int | None, typer.Option("--user", help="Only this customer's Telegram id.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000, help="At most this many rows.")] = 50,
    config: ConfigOption = None,
) -> None:
    """List cases, most recently updated first.

    Columns: number, status, order, amounts asked and approved, reason,
    rule, last update and the desk agent who owns it."""
    from storage.reports import list_cases

    statuses = parse_statuses(status)
    settings = load_settings(config)
    zone = ZoneInfo(settings.i18n.timezone)

    async def go(database: Database) -> int:
        lines = await list_cases(database, statuses=statuses, order_no=order, user_id=user, limit=limit)
        if not lines:
            console.print("No cases match.")
            return 0
        table = Table("case", "status", "order", "asked", "approved", "reason", "rule", "updated", "owner")
        for line in lines:
            table.add_row(line.case_no, line.status, line.order_no, _money(line.amount), _money(line.approved),
                          line.reason, line.rule_id, _when(line.updated_at, zone),
                          str(line.owner_id) if line.owner_id is not None else "-")
        console.print(table)
        console.print(f"{len(lines)} cases" + (f" (the first {limit}; --limit shows more)" if len(lines) == limit else ""))
        return 0

    on_database(settings, go)


def cases_show(
    case_no: Annotated[str, typer.Argument(metavar="CASE", help="Case number, e.g. R20261124-0001.")],
    reveal: Annotated[bool, typer.Option("--reveal", help=(
        "Print the delivered card codes whole (masked otherwise); needs --by, and is recorded in the case "
        "history."))] = False,
    by: Annotated[str, typer.Option("--by", help="Who reveals the codes (an agent's id or alias).")] = "",
    config: ConfigOption = None,
) -> None:
    """One case: its facts, history (who did what), refund attempts, evidence files and deadlines.

    Exit codes: 0 shown, 2 --reveal without a known person, 3 no such case."""
    from storage.reports import case_detail

    settings = load_settings(config)
    zone = ZoneInfo(settings.i18n.timezone)

    async def go(database: Database) -> int:
        detail = await case_detail(database, case_no)
        if detail is None:
            console.print(f"[red]No case {case_no}.[/red]")
            return EXIT_UNKNOWN_CASE
        if reveal and detail.delivered_codes:
            if not await _record_reveal(database, settings, case_no, by):
                return EXIT_BAD_ARGUMENTS
            detail = await case_detail(database, case_no) or detail  # its history now says who looked
        _print_detail(detail, zone, reveal=reveal)
        return 0

    on_database(settings, go)


async def _record_reveal(database: Database, settings: AppConfig, case_no: str, by: str) -> bool:
    """A reveal is an event in the case's history (dialogs.desk.history "codes_cli") before any code is
    printed: a code is never shown without a name on record."""
    from dialogs.clock import utcnow

    if not by.strip():
        console.print("[red]--reveal needs --by WHO[/red] (kept in the case history).")
        return False
    person = await person_named(database, settings, by)
    if person is None:
        return False
    async with database.uow() as uow:
        await uow.cases.log(case_no, actor=person.actor, at=utcnow(), note="codes_cli")
        await uow.commit()
    return True


def _codes(detail: CaseDetail, reveal: bool) -> str:
    from dialogs.proof import mask_code

    if not detail.delivered_codes:
        return "-"
    return ", ".join(detail.delivered_codes if reveal else (mask_code(code) for code in detail.delivered_codes))


def _print_detail(detail: CaseDetail, zone: ZoneInfo, reveal: bool = False) -> None:
    line = detail.line
    facts = Table.grid(padding=(0, 2))
    for name, value in (
        ("case", line.case_no), ("status", line.status), ("order", line.order_no),
        ("customer", f"user {line.user_id}, chat {detail.chat_id}, {detail.locale}"),
        ("reason", line.reason), ("verdict", f"{detail.verdict} ({line.rule_id})"),
        ("asked", f"{_money(line.amount)} CNY"), ("approved", f"{_money(line.approved)} CNY"),
        ("waits for confirm", f"{_money(detail.pending_approval)} CNY" if detail.pending_approval else "-"),
        ("owner", str(line.owner_id) if line.owner_id is not None else "-"),
        ("created", _when(detail.created_at, zone)), ("updated", _when(line.updated_at, zone)),
        ("review due", detail.review_due.isoformat()),
        ("credit due", detail.credit_due.isoformat() if detail.credit_due else "-"),
        ("rating", str(detail.rating) if detail.rating is not None else "-"),
        ("description", detail.description or "-"),
        ("card codes", _codes(detail, reveal)),
    ):
        facts.add_row(f"[bold]{name}[/bold]", escape(value))  # customers' words are not markup
    console.print(facts)

    history = Table("at", "by", "from", "to", "note", title="History")
    for event in detail.events:
        history.add_row(_when(event.at, zone), escape(event.actor), event.from_status or "-", event.to_status,
                        escape(event.note))
    console.print(history)

    if detail.attempts:
        attempts = Table("key", "status", "amount", "rail", "reference", "created", "updated", title="Refund attempts")
        for attempt in detail.attempts:
            attempts.add_row(attempt.idempotency_key, attempt.status, _money(attempt.amount), attempt.gateway,
                             escape(attempt.external_ref or "-"), _when(attempt.created_at, zone),
                             _when(attempt.updated_at, zone))
        console.print(attempts)
        for attempt in detail.attempts:  # what the rail said, word for word (lines: the words can be long)
            if attempt.rail_status or attempt.rail_error:
                said = ", ".join(f"{name} {value}" for name, value in (("rail status", attempt.rail_status),
                                                                      ("refused", attempt.rail_error)) if value)
                console.print(f"  {attempt.idempotency_key}: {said}", markup=False, soft_wrap=True)
    else:
        console.print("Refund attempts: none")

    # Plain lines, not a table: a path must come out whole, to copy it.
    console.print(f"[bold]Evidence[/bold]: {len(detail.evidence) or 'none'}")
    for item in detail.evidence:
        console.print(f"  {item.path}  {item.size} bytes, {item.mime_type}, added {_when(item.created_at, zone)}",
                      soft_wrap=True, markup=False)

    if detail.timers:
        timers = Table("deadline", "due", "done", title="Deadlines")
        for timer in detail.timers:
            timers.add_row(timer.kind, _when(timer.due_at, zone), _when(timer.done_at, zone))
        console.print(timers)


class ExportFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"


def cases_export(
    status: Annotated[list[str] | None, typer.Option("--status", "-s", help="Only these statuses (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(help="Created on or after this day (YYYY-MM-DD, \\[i18n] timezone).")] = None,
    until: Annotated[str | None, typer.Option(help="Created on or before this day (YYYY-MM-DD, inclusive).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", dir_okay=False,
                                                help="File to write (default: standard output; xlsx needs a file).")] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", case_sensitive=False,
                                              help="csv, or xlsx (amounts as numbers, a frozen header).")] = ExportFormat.csv,
    full: Annotated[bool, typer.Option("--full", help="The buyer's contact in full (masked by default: 138****5678).")] = False,
    config: ConfigOption = None,
) -> None:
    """Export cases for finance, as CSV or XLSX.

    Columns: case_no, order_no, user, reason, verdict, rule_id, amount, refunded_amount,
    status, created_at, review_due, credit_due, rating, payment_channel, buyer_contact, approved_amount,
    trade_no (the order's, on its rail), payout_ref (the latest payout's refund id on its rail),
    rail_status (the rail's own word for that payout), rail_error (why the rail refused it).

    Exit codes: 0 written, 2 bad arguments."""
    import sys

    from bot.finance import Export, export_rows, local_range, write_csv, write_xlsx

    statuses = parse_statuses(status)
    try:
        first = date.fromisoformat(since) if since else None
        last = date.fromisoformat(until) if until else None
    except ValueError as exc:
        console.print(f"[red]Not a date (YYYY-MM-DD):[/red] {exc}")
        raise typer.Exit(EXIT_BAD_ARGUMENTS) from exc
    if fmt is ExportFormat.xlsx and output is None:
        console.print("[red]--format xlsx needs --output FILE[/red] (a workbook is not text).")
        raise typer.Exit(EXIT_BAD_ARGUMENTS)
    settings = load_settings(config)
    start, end = local_range(first, last, settings.i18n.timezone)

    fetched: list[Export] = []

    async def fetch(database: Database) -> int:
        fetched.append(await export_rows(database, statuses=statuses, since=start, until=end,
                                         timezone=settings.i18n.timezone, full_contact=full))
        return 0

    on_database(settings, fetch)
    rows = fetched[0]
    if output is None:
        write_csv(rows, sys.stdout)
        return
    if fmt is ExportFormat.xlsx:
        write_xlsx(rows, str(output))
    else:
        with open(output, "w", newline="", encoding="utf-8") as handle:
            write_csv(rows, handle)
    console.print(f"{len(rows.rows)} cases written to {output}")
