"""Backups of the configured database: SQLite is copied with its online backup API (a consistent
snapshot while the bot keeps writing); PostgreSQL is dumped by pg_dump, whose command line is built here."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import URL, make_url


class BackupError(Exception):
    """The backup could not be made (say why, in one line)."""


@dataclass(frozen=True, slots=True)
class PgDump:
    argv: list[str]  # the password is not in it: it goes in PGPASSWORD
    destination: Path
    shown: str  # the command for a person to read or paste, password masked
    password: str | None


def default_name(now: datetime) -> str:
    return f"refundbot-{now.astimezone(UTC):%Y%m%d-%H%M%S}"


def target(to: Path | None, default_folder: Path, suffix: str, now: datetime) -> Path:
    """Where the copy goes: `to` itself, a new time-stamped file in `to` when it is a folder, else one
    in `default_folder`."""
    if to is not None and not to.is_dir():
        return to
    return (to if to is not None else default_folder) / f"{default_name(now)}{suffix}"


def backup_sqlite(source: Path, destination: Path, *, pages_per_step: int = 1024) -> int:
    """Copy `source` to `destination` with sqlite3's online backup (writers may go on meanwhile: the
    copy is the database as of one moment). Returns the copy's size in bytes."""
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    if destination.exists():
        raise BackupError(f"{destination} exists already; choose another --to")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=pages_per_step)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            dst.close()
    finally:
        src.close()
    partial.replace(destination)  # a crash never leaves half a backup under the final name
    return destination.stat().st_size


def pg_dump_command(url: str, destination: Path) -> PgDump:
    """pg_dump in its custom format (restore with pg_restore), for a postgresql:// URL."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if parsed.get_backend_name() != "postgresql":
        raise BackupError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    plain = URL.create("postgresql", username=parsed.username, host=parsed.host, port=parsed.port,
                       database=parsed.database, query=parsed.query)  # no password: PGPASSWORD carries it
    conninfo = plain.render_as_string(hide_password=False)
    argv = ["pg_dump", "--format=custom", "--no-owner", f"--file={destination}", f"--dbname={conninfo}"]
    shown = " ".join(argv) if parsed.password is None else "PGPASSWORD=*** " + " ".join(argv)
    return PgDump(argv, destination, shown, parsed.password)


def run_pg_dump(dump: PgDump) -> int:
    """Run it when pg_dump is on PATH; returns the dump's size. BackupError with pg_dump's own words."""
    if shutil.which(dump.argv[0]) is None:
        raise BackupError("pg_dump is not on PATH")
    env = dict(os.environ)
    if dump.password is not None:
        env["PGPASSWORD"] = dump.password
    dump.destination.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(dump.argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit code {done.returncode}"
        raise BackupError(f"pg_dump failed: {why}")
    return dump.destination.stat().st_size
