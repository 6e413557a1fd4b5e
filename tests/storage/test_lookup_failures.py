"""Failed phone-digit checks per order number (the LookupFailures port), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from dialogs.ports import LookupTally
from storage.models import LookupFailureRow
from storage.uow import Database
from tests.storage.factories import T0

NUMBER = "KM20261101000001"
WINDOW = timedelta(minutes=60)
KEEP = timedelta(minutes=120)


async def _fail(database: Database, number: str = NUMBER, at: datetime = T0) -> LookupTally:
    async with database.uow() as uow:
        tally = await uow.lookups.record(number, at=at, window=WINDOW, forget_before=at - KEEP)
        await uow.commit()
    return tally


async def test_an_unknown_number_has_no_tally(database: Database) -> None:
    async with database.uow() as uow:
        assert await uow.lookups.get(NUMBER) is None


async def test_failures_count_up_within_the_window(database: Database) -> None:
    for minute in range(3):
        await _fail(database, at=T0 + timedelta(minutes=minute))
    async with database.uow() as uow:
        tally = await uow.lookups.get(NUMBER)
    assert tally == LookupTally(NUMBER, window_start=T0, failures=3, last_failed_at=T0 + timedelta(minutes=2))


async def test_a_failure_after_the_window_starts_a_new_count(database: Database) -> None:
    await _fail(database)
    await _fail(database)
    later = T0 + WINDOW
    assert await _fail(database, at=later) == LookupTally(NUMBER, window_start=later, failures=1,
                                                          last_failed_at=later)


async def test_numbers_are_counted_apart(database: Database) -> None:
    await _fail(database)
    assert (await _fail(database, "KM29991231999999")).failures == 1


async def test_locking_creates_an_empty_tally_that_a_failure_then_counts(database: Database) -> None:
    async with database.uow() as uow:
        assert await uow.lookups.lock(NUMBER, now=T0) == LookupTally(NUMBER, T0, 0, None)
        await uow.commit()
    assert (await _fail(database, at=T0 + timedelta(minutes=5))).failures == 1


async def test_a_rolled_back_failure_is_not_counted(database: Database) -> None:
    async with database.uow() as uow:
        await uow.lookups.record(NUMBER, at=T0, window=WINDOW, forget_before=T0 - KEEP)
    async with database.uow() as uow:
        assert await uow.lookups.get(NUMBER) is None


async def test_a_write_forgets_tallies_untouched_since_forget_before(database: Database) -> None:
    await _fail(database, "KM20261101000002")
    await _fail(database, at=T0 + KEEP + timedelta(minutes=1))
    async with database.uow() as uow:
        assert await uow.lookups.get("KM20261101000002") is None
        rows = await uow.session.scalar(select(func.count()).select_from(LookupFailureRow))
    assert rows == 1


@pytest.mark.parametrize("tally_exists", [False, True], ids=["new-number", "known-number"])
async def test_a_second_chat_waits_for_the_first_and_sees_its_failure(database: Database, tally_exists: bool) -> None:
    # Two chats check digits for one number at once: the second must see the first one's failure,
    # or both would slip in under the limit (row lock on PostgreSQL, write lock on SQLite).
    if tally_exists:
        await _fail(database)
    locked = asyncio.Event()

    async def first() -> int:
        async with database.uow() as uow:
            before = await uow.lookups.lock(NUMBER, now=T0)
            locked.set()
            await asyncio.sleep(0.3)
            await uow.lookups.record(NUMBER, at=T0, window=WINDOW, forget_before=T0 - KEEP)
            await uow.commit()
        return before.failures

    async def second() -> int:
        await locked.wait()
        async with database.uow() as uow:
            seen = await uow.lookups.lock(NUMBER, now=T0)
            await uow.commit()
        return seen.failures

    offset = 1 if tally_exists else 0
    assert await asyncio.gather(first(), second()) == [offset, offset + 1]


async def test_an_overlong_number_is_counted_under_its_first_64_characters(database: Database) -> None:
    long = "K" * 80
    await _fail(database, long)
    async with database.uow() as uow:
        tally = await uow.lookups.get(long)
    assert tally is not None and tally.failures == 1
