"""Schema migrations, run programmatically (no alembic.ini, independent of the current directory).

The bot calls `check_schema(url)` at start-up and either upgrades (`upgrade_async`) or refuses to
start with `SchemaState.message`. Developers: `python -m storage.migrate --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from storage.db import create_engine, sqlite_path

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

T = TypeVar("T")


def alembic_config(url: str | None = None) -> Config:
    """An alembic Config built in code; the URL travels in `attributes`, which (unlike main
    options) does not go through configparser interpolation of '%' in passwords."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        config.attributes["url"] = url
    return config


def _call_outside_loop(fn: Callable[[], T]) -> T:
    """Run `fn` here, or in a helper thread when this thread runs an event loop: env.py (and the
    helpers below) use asyncio.run(), which refuses to nest. Blocks the caller either way; async
    code should prefer the *_async variants."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


def _run(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return _call_outside_loop(lambda: asyncio.run(coro_factory()))


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision`."""
    _call_outside_loop(lambda: command.upgrade(alembic_config(url), revision))


async def upgrade_async(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    _call_outside_loop(lambda: command.downgrade(alembic_config(url), revision))


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships at least one revision
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


@dataclass(frozen=True, slots=True)
class _Inspection:
    revision: str | None
    has_tables: bool


def _inspect(connection: Connection) -> _Inspection:
    revision = MigrationContext.configure(connection).get_current_revision()
    tables = set(inspect(connection).get_table_names()) - {"alembic_version"}
    return _Inspection(revision, bool(tables))


async def _inspect_url(url: str) -> _Inspection:
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return _Inspection(None, False)  # do not create the file just to look at it
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_inspect)
    finally:
        await engine.dispose()


async def current_revision_async(url: str) -> str | None:
    return (await _inspect_url(url)).revision


def current_revision(url: str) -> str | None:
    """The revision stamped in the database; None when it was never migrated."""
    return _run(lambda: current_revision_async(url))


class SchemaStatus(StrEnum):
    MISSING = "missing"  # empty database: upgrade creates everything
    BEHIND = "behind"  # older revision: upgrade applies the rest
    CURRENT = "current"
    UNVERSIONED = "unversioned"  # tables but no alembic stamp: not ours, or created by hand
    UNKNOWN = "unknown"  # a revision this code does not know (newer code migrated it?)


@dataclass(frozen=True, slots=True)
class SchemaState:
    status: SchemaStatus
    current: str | None
    head: str

    @property
    def ok(self) -> bool:
        return self.status is SchemaStatus.CURRENT

    @property
    def upgradable(self) -> bool:
        return self.status in (SchemaStatus.MISSING, SchemaStatus.BEHIND)

    @property
    def message(self) -> str:
        match self.status:
            case SchemaStatus.CURRENT:
                return f"database schema is current (revision {self.head})"
            case SchemaStatus.MISSING:
                return f"database has no schema yet; run the migrations to create revision {self.head}"
            case SchemaStatus.BEHIND:
                return (
                    f"database schema is at revision {self.current}, this version needs {self.head}; "
                    "run the migrations (back up the database first)"
                )
            case SchemaStatus.UNVERSIONED:
                return (
                    "database has tables but no migration stamp; refusing to touch it "
                    "(point the bot at an empty database or one created by its migrations)"
                )
            case SchemaStatus.UNKNOWN:
                return (
                    f"database schema is at revision {self.current}, unknown to this version "
                    f"(head {self.head}); was it migrated by a newer release?"
                )


async def check_schema(url: str) -> SchemaState:
    """Compare the database with the migrations shipped in this package."""
    script = ScriptDirectory.from_config(alembic_config())
    head = head_revision()
    found = await _inspect_url(url)
    if found.revision is None:
        status = SchemaStatus.UNVERSIONED if found.has_tables else SchemaStatus.MISSING
    elif found.revision == head:
        status = SchemaStatus.CURRENT
    else:
        try:
            known = script.get_revision(found.revision) is not None
        except (CommandError, RevisionError):
            known = False
        status = SchemaStatus.BEHIND if known else SchemaStatus.UNKNOWN
    return SchemaState(status=status, current=found.revision, head=head)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m storage.migrate", description=__doc__)
    parser.add_argument("url", help="database URL, e.g. sqlite:///data/refundbot.db")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("upgrade", help="migrate to the newest revision")
    sub.add_parser("check", help="show whether the schema is current")
    revision = sub.add_parser("revision", help="autogenerate a new revision against the database")
    revision.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    if args.action == "upgrade":
        upgrade(args.url)
        print(f"upgraded to {head_revision()}")
    elif args.action == "check":
        state = asyncio.run(check_schema(args.url))
        print(state.message)
        raise SystemExit(0 if state.ok else 1)
    else:
        command.revision(alembic_config(args.url), message=args.message, autogenerate=True)


if __name__ == "__main__":
    main()
