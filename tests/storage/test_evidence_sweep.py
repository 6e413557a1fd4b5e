"""The evidence sweeper on SQLite and PostgreSQL: abandoned drafts' rows and files nobody names go;
a filed case's evidence, a draft still in use and a file just downloaded stay."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from bot.evidence import EvidenceSweeper, Swept
from storage.uow import Database
from tests.storage.factories import T0, make_evidence

AGE = timedelta(days=7)
HOUR = 3600.0


def on_disk(directory: Path, digest: str, *, age: float = 2 * HOUR, suffix: str = "png") -> Path:
    path = directory / digest[:2] / f"{digest}.{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    stamp = T0.timestamp() + 8 * 24 * HOUR - age
    os.utime(path, (stamp, stamp))
    return path


async def add(url: str, draft_id: str, unique_id: str, digest: str, *, days_ago: float,
              case_no: str | None = None) -> None:
    db = Database.from_url(url, clock=lambda: T0 + timedelta(days=8 - days_ago))
    try:
        async with db.uow() as uow:
            await uow.evidence.add_draft(draft_id, 7, make_evidence(unique_id, sha256=digest))
            if case_no is not None:
                await uow.evidence.attach(draft_id, case_no)
            await uow.commit()
    finally:
        await db.dispose()


def sweeper(database: Database, directory: Path) -> EvidenceSweeper:
    now = T0 + timedelta(days=8)
    return EvidenceSweeper(database.uow, directory, AGE, clock=lambda: now, wall=now.timestamp)


async def test_an_abandoned_drafts_rows_and_files_go_and_a_cases_stay(
        migrated_database_url: str, database: Database, tmp_path: Path) -> None:
    filed, abandoned, shared = "a" * 64, "b" * 64, "c" * 64
    await add(migrated_database_url, "d-filed", "F1", filed, days_ago=30, case_no="R20261101-0001")
    await add(migrated_database_url, "d-filed", "F2", shared, days_ago=30, case_no="R20261101-0001")
    await add(migrated_database_url, "d-old", "A1", abandoned, days_ago=10)
    await add(migrated_database_url, "d-old", "A2", shared, days_ago=9)  # the same picture as a case's
    paths = {d: on_disk(tmp_path, d) for d in (filed, abandoned, shared)}

    assert await sweeper(database, tmp_path).sweep() == Swept(rows=2, files=1)

    assert not paths[abandoned].exists()
    assert paths[filed].exists() and paths[shared].exists()
    async with database.uow() as uow:
        assert await uow.evidence.list_draft("d-old") == []
        assert len(await uow.evidence.list_draft("d-filed")) == 2


async def test_a_draft_with_a_recent_file_keeps_all_its_rows(
        migrated_database_url: str, database: Database, tmp_path: Path) -> None:
    await add(migrated_database_url, "d-live", "L1", "d" * 64, days_ago=10)
    await add(migrated_database_url, "d-live", "L2", "e" * 64, days_ago=1)
    kept = [on_disk(tmp_path, "d" * 64), on_disk(tmp_path, "e" * 64)]

    assert await sweeper(database, tmp_path).sweep() == Swept(rows=0, files=0)

    assert all(p.exists() for p in kept)
    async with database.uow() as uow:
        assert len(await uow.evidence.list_draft("d-live")) == 2


async def test_files_no_row_names_go_unless_just_written(database: Database, tmp_path: Path) -> None:
    orphan = on_disk(tmp_path, "f" * 64)  # a download whose update never wrote a row
    crashed = on_disk(tmp_path, "0" * 64, suffix="123.tmp")  # a crash mid-write
    fresh = on_disk(tmp_path, "1" * 64, age=60)  # its row is still being committed

    assert await sweeper(database, tmp_path).sweep() == Swept(rows=0, files=2)

    assert not orphan.exists() and not crashed.exists()
    assert fresh.exists()
