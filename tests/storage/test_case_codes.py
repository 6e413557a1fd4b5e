"""A case's delivered 卡密 (migration 0011) survive the round trip on SQLite and PostgreSQL, and do not
follow the order's later changes."""

from __future__ import annotations

from storage.uow import Database
from tests.storage.factories import make_case, make_order

CODES = ("STEAM-7H3K-9QX2-ABCD", "卡密-二号-0001")


async def test_a_cases_codes_are_kept_as_filed_whatever_the_order_says_later(database: Database) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001", delivered_codes=CODES))
        await uow.cases.add(make_case("R20261124-0001", "A1001", delivered_codes=CODES))
        await uow.commit()
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001", delivered_codes=("REPLACED-BY-THE-SHOP",)))
        await uow.commit()
    async with database.uow() as uow:
        case = await uow.cases.get("R20261124-0001")
        [listed] = await uow.cases.for_order("A1001")
        locked = await uow.cases.get("R20261124-0001", for_update=True)
    assert case is not None and locked is not None
    assert case.delivered_codes == listed.delivered_codes == locked.delivered_codes == CODES


async def test_a_case_without_codes_reads_back_empty(database: Database) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001"))
        await uow.cases.add(make_case("R20261124-0001", "A1001"))
        await uow.commit()
    async with database.uow() as uow:
        case = await uow.cases.get("R20261124-0001")
    assert case is not None and case.delivered_codes == ()
