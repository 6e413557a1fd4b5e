"""`refundbot reconcile`: the books against the rails, attempt by attempt (bot/reconcile.py), as a table
and CSV. Only reads: the rails are asked (RefundGateway.query), nothing is paid or recorded."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from bot.cli_base import ConfigOption, console, load_settings, on_database

if TYPE_CHECKING:
    from bot.reconcile import Report
    from storage.uow import Database

EXIT_MISMATCH = 1
EXIT_BAD_ARGUMENTS = 2


def register(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile)


def _day(value: str | None, option: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError as exc:
        console.print(f"[red]{option} {escape(value or '')}: not a date (YYYY-MM-DD).[/red]")
        raise typer.Exit(EXIT_BAD_ARGUMENTS) from exc


def reconcile(
    since: Annotated[str | None, typer.Option(help="Attempts made on or after this day (YYYY-MM-DD, \\[i18n] "
                                                   "timezone). Default: yesterday.")] = None,
    until: Annotated[str | None, typer.Option(help="Attempts made on or before this day (inclusive). Default: "
                                                   "--since's day when --since is not given, else today.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", dir_okay=False,
                                                help="Also write the lines as CSV to this file.")] = None,
    gateway: Annotated[str | None, typer.Option("--gateway", help="Only this gateway's attempts (e.g. alipay).")] = None,
    config: ConfigOption = None,
) -> None:
    """Compare every refund attempt of the window with what its rail says.

    Kinds: ok, missing (the books say paid or accepted, the rail has no such refund),
    unbooked (the rail paid, the books do not say so), amount_differs, status_differs,
    doubled (per order: the rail paid back more than the books, or than was paid), unknown (the rail
    could not answer). Attempts of the manual and http gateways are not asked.

    CSV columns: case_no, order_no, key, gateway, books_status, books_amount, rail_status, rail_amount,
    rail_refund_id, kind, note.

    Exit codes: 0 everything agrees, 1 a mismatch (or a rail that could not answer), 2 bad arguments."""
    from bot.finance import local_range
    from bot.rails import build_gateways, gateway_names
    from bot.reconcile import UNASKABLE
    from bot.reconcile import reconcile as run

    first, last = _day(since, "--since"), _day(until, "--until")
    settings = load_settings(config)
    zone = ZoneInfo(settings.i18n.timezone)
    today = datetime.now(zone).date()
    if first is None:
        first = today - timedelta(days=1) if last is None else last
        last = last or first
    last = last or today
    if first > last:
        console.print(f"[red]--since {first} is after --until {last}.[/red]")
        raise typer.Exit(EXIT_BAD_ARGUMENTS)
    names = gateway_names(settings.platform)
    if gateway is not None and (gateway not in names or gateway in UNASKABLE):
        askable = [n for n in names if n not in UNASKABLE]
        console.print(f"[red]--gateway {escape(gateway)}: not a gateway that can be asked[/red] (configured and "
                      f"askable: {', '.join(askable) or 'none; manual and http are never asked'}).")
        raise typer.Exit(EXIT_BAD_ARGUMENTS)
    try:
        gateways = build_gateways(settings.platform)
    except (ValueError, OSError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(EXIT_BAD_ARGUMENTS) from exc
    start, end = local_range(first, last, settings.i18n.timezone)

    reports: list[Report] = []

    async def go(database: Database) -> int:
        try:
            reports.append(await run(database, gateways, start, end, only=gateway,
                                     call_timeout=settings.platform.timeout_seconds + 5))
        finally:
            for built in gateways.values():
                await built.close()
        return 0

    on_database(settings, go)
    report = reports[0]
    _print(report, first, last)
    if output is not None:
        from bot.reconcile import write_csv

        with open(output, "w", newline="", encoding="utf-8") as handle:
            write_csv(report, handle)
        console.print(f"{len(report.lines)} lines written to {output}")
    if report.mismatches:
        raise typer.Exit(EXIT_MISMATCH)


def _print(report: Report, first: date, last: date) -> None:
    window = str(first) if first == last else f"{first} to {last}"
    if report.lines:
        table = Table("case", "order", "key", "gateway", "books", "amount", "rail", "amount", "refund id", "kind",
                      title=f"Reconciliation, {window}")
        for line in report.lines:
            style = "" if line.kind == "ok" else "red"
            table.add_row(line.case_no, escape(line.order_no), line.key or "-", line.gateway or "-",
                          line.books_status, _money(line.books_amount), escape(line.rail_status or "-"),
                          _money(line.rail_amount), escape(line.rail_ref or "-"), line.kind.value, style=style)
        console.print(table)
    asked = sum(1 for line in report.lines if line.key)
    kinds = Counter(line.kind.value for line in report.mismatches)
    summary = f"{asked} refund attempts asked, {len(report.mismatches)} mismatches"
    if kinds:
        summary += " (" + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())) + ")"
    if report.skipped:
        summary += f"; {report.skipped} attempts of the manual or http gateway not asked"
    console.print(summary)
    for line in report.mismatches:
        if line.note:
            console.print(f"  {line.case_no} {line.key or line.order_no}: {line.kind.value}: {line.note}",
                          markup=False, soft_wrap=True)


def _money(amount: Decimal | None) -> str:
    return f"{amount:.2f}" if amount is not None else "-"
