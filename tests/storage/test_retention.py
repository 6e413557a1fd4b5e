"""Evidence retention (`[storage] keep_days`) through the real evidence sweep, on SQLite and PostgreSQL:
a case closed longer ago loses its evidence rows and files and its order's phone number, with a note in
its history; a recently closed case, an open one and an order with an open case keep theirs."""

from __future__ import annotations

import hashlib
import io
import os
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from bot.app import evidence_sweeper
from bot.config import AppConfig, StorageConfig
from dialogs.domain import CaseStatus
from storage.reports import case_detail
from storage.uow import Database
from tests.storage.factories import T0, make_case, make_evidence, make_order

NOW = T0 + timedelta(days=60)


def picture(directory: Path, colour: str) -> tuple[str, Path]:
    """A real PNG stored as the intake stores it (content-addressed), last touched long ago."""
    data = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(data, format="PNG")
    digest = hashlib.sha256(data.getvalue()).hexdigest()
    path = directory / digest[:2] / f"{digest}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.getvalue())
    os.utime(path, (T0.timestamp(), T0.timestamp()))
    return digest, path


async def file_case(url: str, at: datetime, case_no: str, order_no: str, status: CaseStatus,
                    evidence: tuple[str, Path] | None = None, *, new_order: bool = True) -> None:
    """Order and case as of `at` (the case's last change is then)."""
    db = Database.from_url(url, clock=lambda: at)
    try:
        async with db.uow() as uow:
            if new_order:
                await uow.orders.upsert(make_order(order_no, buyer_telegram_id=None))
            await uow.cases.add(make_case(case_no, order_no, status=status, created_at=at))
            if evidence is not None:
                digest, path = evidence
                await uow.evidence.add_draft(f"d-{case_no}", 424242,
                                             make_evidence(f"u-{case_no}", sha256=digest, path=str(path)))
                await uow.evidence.attach(f"d-{case_no}", case_no)
            await uow.commit()
    finally:
        await db.dispose()


def sweep_config(evidence_dir: Path, keep_days: float) -> AppConfig:
    return AppConfig(storage=StorageConfig(evidence_dir=str(evidence_dir), keep_days=keep_days))


async def phone_of(database: Database, order_no: str) -> str:
    async with database.uow() as uow:
        order = await uow.orders.get(order_no)
        assert order is not None
        return order.buyer_phone


async def test_a_case_closed_longer_than_keep_days_loses_its_evidence_files_and_phone_with_a_note(
        migrated_database_url: str, database: Database, tmp_path: Path) -> None:
    old = picture(tmp_path / "evidence", "red")
    await file_case(migrated_database_url, NOW - timedelta(days=40), "R20261001-0001", "A1", CaseStatus.REFUNDED, old)
    sweeper = evidence_sweeper(sweep_config(tmp_path / "evidence", 30), database)
    sweeper.clock, sweeper.wall = (lambda: NOW), NOW.timestamp

    swept = await sweeper.sweep()

    assert (swept.purged, swept.files) == (1, 1)
    assert not old[1].exists()
    assert await phone_of(database, "A1") == ""
    detail = await case_detail(database, "R20261001-0001")
    assert detail is not None and detail.evidence == ()
    assert detail.line.status == "refunded" and detail.line.amount == make_case().amount  # the money facts stay
    note = detail.events[-1]
    assert note.actor == "retention"
    assert "evidence purged (1 files)" in note.note and "buyer phone of order A1 erased" in note.note


async def test_recently_closed_and_open_cases_keep_their_evidence_and_phone(
        migrated_database_url: str, database: Database, tmp_path: Path) -> None:
    recent, open_case = picture(tmp_path / "evidence", "green"), picture(tmp_path / "evidence", "blue")
    await file_case(migrated_database_url, NOW - timedelta(days=5), "R20261120-0001", "A2", CaseStatus.REFUNDED, recent)
    await file_case(migrated_database_url, NOW - timedelta(days=50), "R20261010-0001", "A3", CaseStatus.IN_REVIEW,
                    open_case)
    sweeper = evidence_sweeper(sweep_config(tmp_path / "evidence", 30), database)
    sweeper.clock, sweeper.wall = (lambda: NOW), NOW.timestamp

    swept = await sweeper.sweep()

    assert (swept.purged, swept.files) == (0, 0)
    assert recent[1].exists() and open_case[1].exists()
    assert await phone_of(database, "A2") == "13800138000" and await phone_of(database, "A3") == "13800138000"


async def test_an_order_with_an_open_case_keeps_its_phone_while_its_old_closed_case_loses_evidence(
        migrated_database_url: str, database: Database, tmp_path: Path) -> None:
    old = picture(tmp_path / "evidence", "white")
    await file_case(migrated_database_url, NOW - timedelta(days=40), "R20261001-0002", "A4", CaseStatus.REJECTED_FINAL,
                    old)
    await file_case(migrated_database_url, NOW - timedelta(days=1), "R20261123-0001", "A4", CaseStatus.SUBMITTED,
                    new_order=False)
    sweeper = evidence_sweeper(sweep_config(tmp_path / "evidence", 30), database)
    sweeper.clock, sweeper.wall = (lambda: NOW), NOW.timestamp

    assert (await sweeper.sweep()).purged == 1

    assert not old[1].exists()
    assert await phone_of(database, "A4") == "13800138000"


async def test_keep_days_zero_keeps_everything_forever(
        migrated_database_url: str, database: Database, tmp_path: Path) -> None:
    old = picture(tmp_path / "evidence", "black")
    await file_case(migrated_database_url, NOW - timedelta(days=400), "R20251001-0001", "A5", CaseStatus.CLOSED, old)
    sweeper = evidence_sweeper(sweep_config(tmp_path / "evidence", 0), database)
    sweeper.clock, sweeper.wall = (lambda: NOW), NOW.timestamp

    assert (await sweeper.sweep()).purged == 0

    assert old[1].exists() and await phone_of(database, "A5") == "13800138000"


async def test_a_second_sweep_adds_no_second_note(
        migrated_database_url: str, database: Database, tmp_path: Path) -> None:
    await file_case(migrated_database_url, NOW - timedelta(days=40), "R20261001-0003", "A6", CaseStatus.WITHDRAWN,
                    picture(tmp_path / "evidence", "yellow"))
    sweeper = evidence_sweeper(sweep_config(tmp_path / "evidence", 30), database)
    sweeper.clock, sweeper.wall = (lambda: NOW), NOW.timestamp

    assert (await sweeper.sweep()).purged == 1
    assert (await sweeper.sweep()).purged == 0
    detail = await case_detail(database, "R20261001-0003")
    assert detail is not None and [e.actor for e in detail.events].count("retention") == 1
