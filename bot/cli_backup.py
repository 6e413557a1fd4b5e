"""`refundbot backup`: a consistent copy of the database while the bot runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli_base import ConfigOption, console, load_settings


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)


def backup(
    to: Annotated[Path | None, typer.Option("--to", help=(
        "The backup file, or a folder for a time-stamped one (default: backups/ beside the SQLite file, "
        "the current folder for PostgreSQL)."))] = None,
    print_only: Annotated[bool, typer.Option("--print", help="PostgreSQL: only print the pg_dump command.")] = False,
    config: ConfigOption = None,
) -> None:
    """Back the database up, safely while the bot runs.

    SQLite: copy the database with SQLite's online backup (safe while the bot writes) and print the
    file and its size. PostgreSQL: run pg_dump (custom format, restore with pg_restore) when it is on
    PATH, else print the command to run.

    Exit codes: 0 done (or the command printed), 1 the backup failed."""
    from dialogs.clock import utcnow
    from storage.backup import BackupError, backup_sqlite, pg_dump_command, run_pg_dump, target
    from storage.db import is_sqlite, sqlite_path

    settings = load_settings(config)
    url = settings.database.url
    now = utcnow()
    try:
        if is_sqlite(url):
            source = sqlite_path(url)
            if source is None:
                console.print("[red]An in-memory database has nothing to back up.[/red]")
                raise typer.Exit(1)
            destination = target(to, source.parent / "backups", ".db", now)
            size = backup_sqlite(source, destination)
            console.print(f"Backed up {source} to {destination} ({size:,} bytes).", soft_wrap=True, markup=False)
            return
        dump = pg_dump_command(url, target(to, Path.cwd() / "backups", ".dump", now))
        if print_only:
            console.print(dump.shown, soft_wrap=True, markup=False)
            return
        try:
            size = run_pg_dump(dump)
        except BackupError as exc:
            if "not on PATH" not in str(exc):
                raise
            console.print("pg_dump is not on PATH; run this where it is:", markup=False)
            console.print(dump.shown, soft_wrap=True, markup=False)
            return
        console.print(f"Dumped the database to {dump.destination} ({size:,} bytes); restore with pg_restore.",
                      soft_wrap=True, markup=False)
    except BackupError as exc:
        console.print(f"Backup failed: {exc}", soft_wrap=True, markup=False)
        raise typer.Exit(1) from None
