from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from storage import migrate
from storage.db import create_engine
from storage.migrate import SchemaStatus
from storage.models import Base


async def _schema_diff(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:

            def diff(sync: Connection) -> list[Any]:
                return list(compare_metadata(MigrationContext.configure(sync), Base.metadata))

            return await connection.run_sync(diff)
    finally:
        await engine.dispose()


async def test_migrations_create_exactly_the_models_schema(database_url: str) -> None:
    await migrate.upgrade_async(database_url)
    assert await _schema_diff(database_url) == []


async def test_schema_diff_does_detect_a_missing_schema(database_url: str) -> None:
    # Guards the test above against a comparison that never finds anything.
    assert len(await _schema_diff(database_url)) > 0


async def test_check_schema_reports_missing_then_current(database_url: str) -> None:
    before = await migrate.check_schema(database_url)
    assert (before.status, before.current, before.upgradable) == (SchemaStatus.MISSING, None, True)
    await migrate.upgrade_async(database_url)
    after = await migrate.check_schema(database_url)
    assert (after.status, after.current, after.ok) == (SchemaStatus.CURRENT, migrate.head_revision(), True)
    assert migrate.head_revision() in after.message


async def test_check_schema_reports_an_older_revision_as_behind(database_url: str) -> None:
    await migrate.upgrade_async(database_url, "0001")
    state = await migrate.check_schema(database_url)
    assert (state.status, state.current, state.upgradable) == (SchemaStatus.BEHIND, "0001", True)
    assert "0001" in state.message and migrate.head_revision() in state.message
    await migrate.upgrade_async(database_url)
    assert (await migrate.check_schema(database_url)).ok


async def test_check_schema_refuses_a_revision_it_does_not_know(database_url: str) -> None:
    await migrate.upgrade_async(database_url)
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = 'f00dcafe'"))
    await engine.dispose()
    state = await migrate.check_schema(database_url)
    assert (state.status, state.ok, state.upgradable) == (SchemaStatus.UNKNOWN, False, False)
    assert "f00dcafe" in state.message


async def test_check_schema_refuses_tables_without_a_migration_stamp(database_url: str) -> None:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    await engine.dispose()
    state = await migrate.check_schema(database_url)
    assert (state.status, state.upgradable) == (SchemaStatus.UNVERSIONED, False)


async def test_check_schema_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "bot.db"
    state = await migrate.check_schema(f"sqlite:///{path}")
    assert state.status is SchemaStatus.MISSING
    assert not path.exists()


async def test_sync_upgrade_works_when_called_from_async_code(database_url: str) -> None:
    migrate.upgrade(database_url)  # runs alembic in a helper thread: no nested asyncio.run
    assert await migrate.current_revision_async(database_url) == migrate.head_revision()


def test_upgrade_does_not_depend_on_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'db' / 'bot.db'}"
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()
    assert not (tmp_path / "alembic.ini").exists()
    assert os.listdir(tmp_path) == ["db"]


async def test_downgrade_to_base_removes_every_table(database_url: str) -> None:
    await migrate.upgrade_async(database_url)
    migrate.downgrade(database_url, "base")
    state = await migrate.check_schema(database_url)
    assert (state.status, state.current) == (SchemaStatus.MISSING, None)


async def test_0004_gives_existing_refund_attempts_no_lease_and_downgrades_keeping_them(database_url: str) -> None:
    await migrate.upgrade_async(database_url, "0003")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(
                "INSERT INTO refund_attempts (case_no, idempotency_key, gateway, amount, status, note, created_at,"
                " updated_at) VALUES ('R20261124-0001', 'R20261124-0001-1', 'http', 30.00, 'pending', '',"
                " '2026-11-24 02:30:00+00:00', '2026-11-24 02:30:00+00:00')"))
        await migrate.upgrade_async(database_url, "0004")
        async with engine.connect() as connection:
            rows = (await connection.execute(text(
                "SELECT idempotency_key, claimed_by, claim_until FROM refund_attempts"))).all()
        assert [tuple(r) for r in rows] == [("R20261124-0001-1", None, None)]  # any worker may take it at once
        migrate.downgrade(database_url, "0003")
        async with engine.connect() as connection:
            keys = (await connection.execute(text("SELECT idempotency_key FROM refund_attempts"))).scalars().all()
        assert keys == ["R20261124-0001-1"]
        assert await migrate.current_revision_async(database_url) == "0003"
    finally:
        await engine.dispose()
