from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.exc import StatementError

from dialogs.domain import DeliveryStatus
from storage.uow import Database
from tests.storage.factories import CST, make_order


async def test_upsert_of_a_new_order_inserts_it(database: Database) -> None:
    order = make_order()
    async with database.uow() as uow:
        assert await uow.orders.upsert(order) is True
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.orders.get(order.order_no) == order


async def test_upsert_of_a_known_order_replaces_it(database: Database) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order())
        await uow.commit()
    changed = make_order(
        delivery_status=DeliveryStatus.FAILED,
        delivered_at=None,
        tags=frozenset({"custom", "discount"}),
        amount=Decimal("88.80"),
        card_redeemed=None,
    )
    async with database.uow() as uow:
        assert await uow.orders.upsert(changed) is False
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.orders.get("A1001") == changed


async def test_get_of_an_unknown_order_is_none(database: Database) -> None:
    async with database.uow() as uow:
        assert await uow.orders.get("nope") is None


async def test_datetimes_come_back_as_the_same_instant_in_utc(database: Database) -> None:
    paid_at = datetime(2026, 11, 24, 23, 59, 59, 123456, tzinfo=CST)
    async with database.uow() as uow:
        await uow.orders.upsert(make_order(paid_at=paid_at, delivered_at=None))
        await uow.commit()
    async with database.uow() as uow:
        found = await uow.orders.get("A1001")
    assert found is not None
    assert found.paid_at == paid_at
    assert found.paid_at.utcoffset() == timedelta(0)
    assert found.paid_at.tzinfo is not None
    assert found.paid_at.replace(tzinfo=None) == datetime(2026, 11, 24, 15, 59, 59, 123456)


async def test_naive_datetimes_are_refused(database: Database) -> None:
    async with database.uow() as uow:
        with pytest.raises(StatementError, match="naive datetime"):
            await uow.orders.upsert(make_order(paid_at=datetime(2026, 11, 24, 10, 0)))


async def test_amounts_keep_two_decimal_places_exactly(database: Database) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("big", amount=Decimal("9999999999.99")))
        await uow.orders.upsert(make_order("small", amount=Decimal("0.10")))
        await uow.commit()
    async with database.uow() as uow:
        big, small = await uow.orders.get("big"), await uow.orders.get("small")
    assert big is not None and small is not None
    assert (str(big.amount), str(small.amount)) == ("9999999999.99", "0.10")


async def test_work_not_committed_is_rolled_back(database: Database) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order())
    async with database.uow() as uow:
        assert await uow.orders.get("A1001") is None


async def test_an_exception_in_the_unit_of_work_rolls_back(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.uow() as uow:
            await uow.orders.upsert(make_order())
            raise RuntimeError("boom")
    async with database.uow() as uow:
        assert await uow.orders.get("A1001") is None


async def test_explicit_rollback_discards_and_the_unit_of_work_stays_usable(database: Database) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("dropped"))
        await uow.rollback()
        await uow.orders.upsert(make_order("kept"))
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.orders.get("dropped") is None
        assert await uow.orders.get("kept") is not None


async def test_order_times_are_stored_in_utc_whatever_the_input_offset(database: Database) -> None:
    one_instant = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("utc", paid_at=one_instant))
        await uow.orders.upsert(make_order("cst", paid_at=one_instant.astimezone(CST)))
        await uow.commit()
    async with database.uow() as uow:
        a, b = await uow.orders.get("utc"), await uow.orders.get("cst")
    assert a is not None and b is not None
    assert a.paid_at == b.paid_at and a.paid_at.tzinfo == b.paid_at.tzinfo == UTC
