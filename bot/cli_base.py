"""What every `refundbot` command shares: the console, the --config option, reading the settings and
running work on the configured database. Commands live in bot/cli.py and its bot/cli_*.py siblings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from bot.config import AppConfig, describe_errors, load_config

if TYPE_CHECKING:
    from storage.uow import Database

console = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings (default ./config.toml, else built-in defaults).",
                 exists=True, dir_okay=False),
]


def load_settings(path: Path | None) -> AppConfig:
    try:
        return load_config(path)
    except Exception as exc:
        why = describe_errors(exc) if isinstance(exc, ValidationError) else str(exc)
        for line in why.splitlines():
            console.print(f"[red]Cannot read the configuration:[/red] {escape(line)}", soft_wrap=True)
        raise typer.Exit(2) from exc


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
