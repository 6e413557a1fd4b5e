"""`refundbot orders correct`: the audited correction from the command line (a migrated SQLite file)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from dialogs.domain import RefundAttempt, RefundStatus
from storage.uow import Database
from tests.cli_support import cli, seeded_sqlite
from tests.storage.factories import T0, make_case, make_order

CASE = "R20261124-0001"


async def _seed(database: Database) -> str:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001", amount=Decimal("99.50")))
        await uow.cases.add(make_case(CASE, "A1001", amount=Decimal("99.50")))
        await uow.refunds.add(RefundAttempt(case_no=CASE, idempotency_key=f"{CASE}-1", gateway="manual",
                                            amount=Decimal("20.00"), status=RefundStatus.SUCCEEDED, created_at=T0))
        await uow.commit()
    return str(database.engine.url)


def _stored(url: str) -> tuple[Decimal, list[str]]:
    async def read() -> tuple[Decimal, list[str]]:
        database = Database.from_url(url)
        try:
            async with database.uow() as uow:
                order = await uow.orders.get("A1001")
                notes = [e.note for e in await uow.desk.history(CASE)]
            assert order is not None
            return order.amount, notes
        finally:
            await database.dispose()

    return asyncio.run(read())


def test_orders_correct_changes_the_amount_and_records_it_on_the_case(tmp_path: Path) -> None:
    config, url = seeded_sqlite(tmp_path, _seed)
    code, output = cli("orders", "correct", "A1001", "--amount", "80.00", "--reason", "shop typo",
                       "--by", "ops", "-c", config)
    assert code == 0, output
    assert "corrected amount" in output and CASE in output
    amount, notes = _stored(url)
    assert amount == Decimal("80.00") and "order_correction: amount 99.50 -> 80.00; shop typo" in notes


@pytest.mark.parametrize(("args", "code"), [
    (("--amount", "19.99"), 4),  # below the ¥20.00 already refunded
    (("--amount", "1E+2"), 2),
    (("--amount", "99.50"), 4),  # changes nothing
    (("--buyer-phone", " "), 2),
    ((), 2),
])
def test_orders_correct_refuses_and_changes_nothing(tmp_path: Path, args: tuple[str, ...], code: int) -> None:
    config, url = seeded_sqlite(tmp_path, _seed)
    result, output = cli("orders", "correct", "A1001", *args, "--reason", "r", "--by", "ops", "-c", config)
    assert result == code, output
    assert _stored(url)[0] == Decimal("99.50")


def test_orders_correct_of_an_unknown_order_says_so(tmp_path: Path) -> None:
    config, _ = seeded_sqlite(tmp_path, _seed)
    code, output = cli("orders", "correct", "B9", "--amount", "1.00", "--reason", "r", "--by", "ops", "-c", config)
    assert code == 3 and "No order B9" in output
