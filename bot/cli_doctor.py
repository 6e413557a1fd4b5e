"""`refundbot doctor` and `refundbot calendar`: the operator's view of a setup (bot.doctor,
bot.calendar_check), registered on the Typer app by bot.cli."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from bot.cli_errors import config_or_exit
from bot.config import AppConfig, explain_load_error, load_config

if TYPE_CHECKING:
    from bot.doctor import Finding  # imported when doctor runs: aiohttp and SQLAlchemy cost start-up time

console = Console()
MARKS = {"ok": "[green]✓[/green]", "warn": "[yellow]![/yellow]", "fail": "[red]✗[/red]"}

DoctorConfig = Annotated[
    Path | None,
    typer.Option("--config", "-c", dir_okay=False,
                 help="TOML settings to check (default ./config.toml, else built-in defaults)."),
]


CalendarConfig = Annotated[
    Path | None,
    typer.Option("--config", "-c", dir_okay=False,
                 help="TOML settings (default ./config.toml, else built-in defaults)."),
]


def _today(settings: AppConfig) -> date:
    return datetime.now(ZoneInfo(settings.i18n.timezone)).date()


def doctor(config: DoctorConfig = None) -> None:
    """Check the setup, one line per finding with the fix.

    In order: the config, the database, the token, the webhook, the desk group and its agents, the
    platform's URLs and the holiday calendar. Nothing is changed.

    Exit codes: 0 all good (warnings alone too), 1 something must be fixed."""
    from bot.doctor import Finding, Level, diagnose, exit_code

    try:
        settings = load_config(config)
    except (ValidationError, OSError, ValueError) as exc:
        for line in explain_load_error(exc, config).splitlines():
            _show(Finding(Level.FAIL, "config", line))
        raise typer.Exit(1) from None
    where = config or ("config.toml" if Path("config.toml").exists() else "built-in defaults")
    _show(Finding(Level.OK, "config", f"{where} parses"))
    findings: list[Finding] = []

    async def run() -> None:
        async for finding in diagnose(settings, _today(settings)):
            findings.append(finding)
            _show(finding)

    asyncio.run(run())
    raise typer.Exit(exit_code(findings))


def _show(finding: Finding) -> None:
    console.print(f"{MARKS[finding.level.value]} {finding.check}: {escape(finding.text)}", soft_wrap=True)


def calendar(
    year: Annotated[int | None, typer.Argument(help="The year to show (default: this year).", min=1900,
                                               max=2200)] = None,
    days: Annotated[int, typer.Option("--days", "-n", min=1, max=60,
                                      help="How many of the next working days to list.")] = 10,
    config: CalendarConfig = None,
) -> None:
    """What the bot believes about Chinese working days.

    A year's holidays on weekdays and make-up working days (调休), where each comes from
    (chinese-calendar, or \\[policy] extra_holidays / extra_workdays in the config), and the next
    working days from today, counted as the review and credit deadlines are."""
    from bot.calendar_check import known_years, library_version, next_working_days, year_view
    settings = config_or_exit(config)
    today = _today(settings)
    view = year_view(year or today.year, settings.policy)
    first, last = known_years()
    if view.known:
        console.print(f"{view.year}: from chinese-calendar {library_version()} (it knows {first}-{last})"
                      + (", with [policy] entries on top" if any(d.source == "config" for d in
                                                                 view.holidays + view.workdays) else ""),
                      markup=False)
    else:
        console.print(f"{view.year}: chinese-calendar {library_version()} knows {first}-{last} only: weekends "
                      "plus [policy] extra_holidays and extra_workdays", markup=False, soft_wrap=True)
    for heading, listed in (("Holidays on weekdays", view.holidays),
                            ("Make-up working days on weekends", view.workdays)):
        console.print(f"{heading} ({len(listed)}):", markup=False)
        for day in listed:
            console.print(f"  {day.day} {day.day:%a}  {day.name or '-':<22} {day.source}", markup=False)
    # The fallback's own warning would repeat what the heading above says.
    fallback_log = logging.getLogger("dialogs.workdays")
    level = fallback_log.level
    fallback_log.setLevel(logging.ERROR)
    try:
        upcoming = next_working_days(settings.policy, today, days)
    finally:
        fallback_log.setLevel(level)
    console.print(f"The next {days} working days after {today} ({settings.i18n.timezone}):", markup=False)
    for day in upcoming:
        console.print(f"  {day} {day:%a}", markup=False)
