"""`refundbot cases show`: the case's delivered 卡密 masked; `--reveal --by WHO` prints them whole and
records who looked in the case history first. Finance exports leave codes out."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from dialogs.proof import mask_code
from storage.models import CaseEventRow
from storage.uow import Database
from tests.cli_support import cli, seeded_sqlite
from tests.storage.factories import make_case, make_order

CASE = "R20261124-0001"
CODES = ("STEAM-7H3K-9QX2-ABCD", "STEAM-1Z8Y-4PL0-WXYZ")
DESK = "[desk]\nchat_id = -100123\nagents = [7001]\n[desk.aliases]\n7001 = \"小李\"\n"


async def seed(database: Database) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001", delivered_codes=CODES))
        await uow.cases.add(make_case(CASE, "A1001", delivered_codes=CODES))
        await uow.commit()


async def events(database: Database) -> list[tuple[str, str]]:
    async with database.uow() as uow:
        rows = await uow.session.execute(select(CaseEventRow.actor, CaseEventRow.note).order_by(CaseEventRow.id))
        return [(r.actor, r.note) for r in rows]


def history(tmp_path: Path) -> list[tuple[str, str]]:
    """(actor, note) of every case event, oldest first."""
    async def read() -> list[tuple[str, str]]:
        database = Database.from_url(f"sqlite:///{tmp_path}/cli.db")
        try:
            return await events(database)
        finally:
            await database.dispose()
    return asyncio.run(read())


def test_cases_show_masks_the_codes_and_records_nothing(tmp_path: Path) -> None:
    config, _ = seeded_sqlite(tmp_path, seed, DESK)
    code, out = cli("cases", "show", CASE, "--config", config)
    assert code == 0, out
    assert mask_code(CODES[0]) in out and not any(c in out for c in CODES)
    assert [note for _, note in history(tmp_path)] == [""]  # only the filing


def test_reveal_prints_the_codes_whole_and_the_history_says_who_looked(tmp_path: Path) -> None:
    config, _ = seeded_sqlite(tmp_path, seed, DESK)
    code, out = cli("cases", "show", CASE, "--reveal", "--by", "小李", "--config", config)
    assert code == 0, out
    assert all(c in out for c in CODES)
    assert ("agent:7001", "codes_cli") in history(tmp_path)
    assert "codes_cli" in out  # already in the history it printed


def test_reveal_without_a_known_person_prints_no_code_and_records_nothing(tmp_path: Path) -> None:
    config, _ = seeded_sqlite(tmp_path, seed, DESK)
    for by in ((), ("--by", "Mallory")):
        code, out = cli("cases", "show", CASE, "--reveal", *by, "--config", config)
        assert code == 2, out
        assert not any(c in out for c in CODES)
    assert [note for _, note in history(tmp_path)] == [""]


def test_finance_exports_leave_the_codes_out(tmp_path: Path) -> None:
    config, _ = seeded_sqlite(tmp_path, seed, DESK)
    code, out = cli("cases", "export", "--full", "--config", config)
    assert code == 0 and CASE in out
    assert not any(c in out for c in CODES) and mask_code(CODES[0]) not in out
