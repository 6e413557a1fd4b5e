"""What every `refundbot` command shares: the console, the --config option, reading the settings and
running work on the configured database. Commands live in bot/cli.py and its bot/cli_*.py siblings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bot.cli_errors import config_or_exit
from bot.config import AppConfig

if TYPE_CHECKING:
    from dialogs.staff import Person
    from storage.uow import Database

console = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings (default ./config.toml, else built-in defaults).",
                 dir_okay=False),  # no exists=True: a missing file gets bot.cli_errors' one line
]


def load_settings(path: Path | None) -> AppConfig:
    return config_or_exit(path)


def on_database(settings: AppConfig, work: Callable[[Database], Awaitable[int]]) -> None:
    """Open the configured database (migrated, as `run` opens it), run `work` on it, dispose of it
    whatever happens, and end the command with `work`'s exit code (0: done)."""
    from bot.app import open_database

    async def go() -> int:
        database = await open_database(settings)
        try:
            return await work(database)
        finally:
            await database.dispose()

    code = asyncio.run(go())
    if code:
        raise typer.Exit(code)


async def person_named(database: Database, settings: AppConfig, by: str) -> Person | None:
    """`--by WHO` as the desk knows people (the database's staff, seeded from TOML: dialogs.roster), or
    None once the reason is printed: with desk staff, WHO must be one of them."""
    from dialogs import staff
    from dialogs.clock import utcnow
    from dialogs.roster import current_desk

    async with database.uow() as uow:
        known = await current_desk(uow, settings.core.desk, utcnow())
    try:
        return staff.identify(known, by)
    except staff.UnknownPerson as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        return None
