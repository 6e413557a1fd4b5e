from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import create_engine, normalize_url
from storage.uow import Database


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///data/bot.db", "sqlite+aiosqlite:///data/bot.db"),
        ("sqlite:////abs/bot.db", "sqlite+aiosqlite:////abs/bot.db"),
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgres://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_normalize_url_picks_the_async_driver(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


async def test_sqlite_engine_creates_the_directory_and_sets_pragmas(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'bot.db'}")
    try:
        async with engine.connect() as connection:
            pragmas = {
                name: (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        await engine.dispose()
    assert (tmp_path / "nested" / "dir").is_dir()
    assert pragmas == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "busy_timeout": 10000}


async def test_sqlite_writers_that_read_first_wait_for_each_other_instead_of_failing(tmp_path: Path) -> None:
    # Read-then-write from two connections: with deferred transactions the second upgrade to a
    # write lock fails with "database is locked"; BEGIN IMMEDIATE makes it queue instead.
    db = Database.from_url(f"sqlite:///{tmp_path / 'bot.db'}")
    async with db.engine.begin() as connection:
        await connection.exec_driver_sql("CREATE TABLE counter (n INTEGER NOT NULL)")
        await connection.exec_driver_sql("INSERT INTO counter VALUES (0)")

    async def increment() -> None:
        async with db.session_factory() as session, session.begin():
            n = (await session.execute(text("SELECT n FROM counter"))).scalar_one()
            await asyncio.sleep(0.05)
            await session.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})

    try:
        await asyncio.gather(*(increment() for _ in range(4)))
        async with db.session_factory() as session:
            assert (await session.execute(text("SELECT n FROM counter"))).scalar_one() == 4
    finally:
        await db.dispose()


async def test_sqlite_checkpoint_moves_the_wal_into_the_database_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from storage import migrate
    from storage.uow import Database
    from tests.storage.factories import make_order

    url = f"sqlite:///{tmp_path}/wal.db"
    await migrate.upgrade_async(url)
    database = Database.from_url(url)
    try:
        async with database.uow() as uow:
            for i in range(200):
                await uow.orders.upsert(make_order(f"W{i:05d}"))
            await uow.commit()
        main_file = tmp_path / "wal.db"
        before = main_file.stat().st_size
        assert (tmp_path / "wal.db-wal").stat().st_size > 0  # the orders sit in the WAL so far
        await database.checkpoint()
        assert main_file.stat().st_size > before  # ...and now in the database file itself
    finally:
        await database.dispose()
