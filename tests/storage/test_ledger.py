from __future__ import annotations

import asyncio
from datetime import timedelta

from dialogs.ports import ConcurrentUpdate
from storage.uow import Database
from tests.storage.factories import T0


async def _claim(database: Database, update_id: int) -> bool:
    async with database.uow() as uow:
        claimed = await uow.updates.claim(update_id, 7, T0)
        await uow.commit()
    return claimed


async def test_claiming_an_update_twice_returns_false_the_second_time(database: Database) -> None:
    assert await _claim(database, 1001) is True
    assert await _claim(database, 1001) is False
    assert await _claim(database, 1002) is True


async def test_an_uncommitted_claim_does_not_count(database: Database) -> None:
    async with database.uow() as uow:
        assert await uow.updates.claim(1001, 7, T0) is True
    assert await _claim(database, 1001) is True


async def test_a_claim_race_never_gives_two_winners(database: Database) -> None:
    claimed = asyncio.Event()

    async def first() -> bool:
        async with database.uow() as uow:
            result = await uow.updates.claim(1001, 7, T0)
            claimed.set()
            await asyncio.sleep(0.2)
            await uow.commit()
        return result

    async def second() -> bool | ConcurrentUpdate:
        await claimed.wait()
        try:
            return await _claim(database, 1001)
        except ConcurrentUpdate as exc:  # PostgreSQL: lost the INSERT race
            return exc

    a, b = await asyncio.gather(first(), second())
    assert a is True
    assert b is False or isinstance(b, ConcurrentUpdate)
    assert await _claim(database, 1001) is False  # what the retry sees


async def test_prune_forgets_only_older_claims(database: Database) -> None:
    async with database.uow() as uow:
        await uow.updates.claim(1, 7, T0 - timedelta(days=8))
        await uow.updates.claim(2, 7, T0 - timedelta(days=6))
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.updates.prune(T0 - timedelta(days=7)) == 1
        await uow.commit()
    assert await _claim(database, 1) is True
    assert await _claim(database, 2) is False
