"""What the command-line tests share: the real CLI through Typer's runner at an operator's terminal width,
and a migrated SQLite file with its config, seeded by the test."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from typer.testing import CliRunner

from bot.cli import app
from storage import migrate
from storage.uow import Database

T = TypeVar("T")
WIDE = {"COLUMNS": "250"}  # rich tables at full width, as on an operator's terminal


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner(env=WIDE).invoke(app, list(args))
    return result.exit_code, result.output


def seeded_sqlite(tmp_path: Path, seed: Callable[[Database], Awaitable[T]], extra_config: str = "") -> tuple[str, T]:
    """A migrated SQLite database in tmp_path, `seed` run on it, and the config file naming it (plus
    `extra_config`): (the config's path, what `seed` returned)."""
    url = f"sqlite:///{tmp_path}/cli.db"
    migrate.upgrade(url)
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{url}"\n{extra_config}', encoding="utf-8")

    async def run() -> T:
        database = Database.from_url(url)
        try:
            return await seed(database)
        finally:
            await database.dispose()

    return str(config), asyncio.run(run())
