"""The timers repository contract, on SQLite and PostgreSQL: scheduling is idempotent, a claim is a
lease that two claimers never share, done and cancelled timers never come back."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

from dialogs.domain import Timer, TimerKind
from storage.uow import Database
from tests.storage.factories import T0

K = TimerKind


async def schedule(database: Database, *timers: tuple[str, TimerKind, int, int]) -> None:
    """(case_no, kind, version, minutes after T0) each."""
    async with database.uow() as uow:
        for case_no, kind, version, minutes in timers:
            await uow.timers.schedule(case_no, kind, T0 + timedelta(minutes=minutes), version=version)
        await uow.commit()


async def claim(database: Database, owner: str, minutes: int, *, lease: float = 60, limit: int = 10) -> list[Timer]:
    async with database.uow() as uow:
        claimed = await uow.timers.claim_due(owner=owner, now=T0 + timedelta(minutes=minutes),
                                             lease_seconds=lease, limit=limit)
        await uow.commit()
    return claimed


async def test_scheduling_the_same_timer_twice_sets_it_once(database: Database) -> None:
    async with database.uow() as uow:
        assert await uow.timers.schedule("R1", K.INFO_REMINDER, T0, version=3) is True
        assert await uow.timers.schedule("R1", K.INFO_REMINDER, T0, version=3) is False
        assert await uow.timers.schedule("R1", K.INFO_REMINDER, T0, version=4) is True
        assert await uow.timers.schedule("R1", K.INFO_CLOSE, T0, version=3) is True
        await uow.commit()
    async with database.uow() as uow:
        # Same instant in another offset: the same timer.
        assert await uow.timers.schedule("R1", K.INFO_REMINDER, T0.astimezone(UTC), version=3) is False
        assert len(await uow.timers.pending("R1")) == 3


async def test_pending_lists_a_cases_unfired_timers_soonest_first(database: Database) -> None:
    await schedule(database, ("R1", K.INFO_CLOSE, 1, 60), ("R1", K.INFO_REMINDER, 1, 10),
                   ("R2", K.REVIEW_DUE, 1, 5))
    async with database.uow() as uow:
        assert await uow.timers.pending("R1") == [(K.INFO_REMINDER, T0 + timedelta(minutes=10)),
                                                  (K.INFO_CLOSE, T0 + timedelta(minutes=60))]
        assert await uow.timers.pending("R3") == []


async def test_only_due_timers_are_claimed_soonest_first_with_their_fields(database: Database) -> None:
    await schedule(database, ("R1", K.INFO_CLOSE, 2, 30), ("R2", K.REVIEW_DUE, 1, 10), ("R1", K.INFO_REMINDER, 2, 61))
    claimed = await claim(database, "sweeper-a", 30)
    assert [(t.case_no, t.kind, t.version, t.due_at) for t in claimed] == [
        ("R2", K.REVIEW_DUE, 1, T0 + timedelta(minutes=10)),
        ("R1", K.INFO_CLOSE, 2, T0 + timedelta(minutes=30)),
    ]


async def test_a_claimed_timer_is_nobody_elses_until_its_lease_runs_out(database: Database) -> None:
    await schedule(database, ("R1", K.REVIEW_DUE, 1, 0))
    [first] = await claim(database, "dead-sweeper", 1, lease=60)
    assert await claim(database, "sweeper-b", 1) == []
    assert await claim(database, "sweeper-b", 2) == []  # exactly at the end of the lease: still held
    [again] = await claim(database, "sweeper-b", 3)  # the first claimer died: it comes back
    assert again.id == first.id


async def test_a_done_timer_is_never_claimed_again_nor_pending(database: Database) -> None:
    await schedule(database, ("R1", K.REVIEW_DUE, 1, 0))
    [timer] = await claim(database, "sweeper-a", 1, lease=1)
    async with database.uow() as uow:
        await uow.timers.done(timer.id, at=T0 + timedelta(minutes=1))
        await uow.commit()
    assert await claim(database, "sweeper-b", 600) == []
    async with database.uow() as uow:
        assert await uow.timers.pending("R1") == []
        # ...and setting it again is no new timer.
        assert await uow.timers.schedule("R1", K.REVIEW_DUE, T0, version=1) is False


async def test_two_claimers_never_share_a_timer(database: Database) -> None:
    await schedule(database, *[(f"R{n}", K.INFO_REMINDER, 1, n % 5) for n in range(30)])
    holding = asyncio.Event()

    async def slow_claimer() -> list[Timer]:
        async with database.uow() as uow:
            got = await uow.timers.claim_due(owner="a", now=T0 + timedelta(minutes=10), lease_seconds=60, limit=12)
            holding.set()
            await asyncio.sleep(0.2)  # the other one claims meanwhile (PostgreSQL) or waits (SQLite)
            await uow.commit()
        return got

    async def other_claimer() -> list[Timer]:
        await holding.wait()
        return await claim(database, "b", 10, limit=12)

    a, b = await asyncio.gather(slow_claimer(), other_claimer())
    rest = await claim(database, "c", 10, limit=30)
    ids = [t.id for t in a + b + rest]
    assert len(a) == 12 and len(b) == 12 and len(rest) == 6
    assert len(set(ids)) == 30  # every timer once, none twice


async def test_cancel_drops_a_cases_pending_timers_of_the_kinds_asked(database: Database) -> None:
    await schedule(database, ("R1", K.INFO_REMINDER, 1, 10), ("R1", K.INFO_REMINDER, 1, 20),
                   ("R1", K.INFO_CLOSE, 1, 30), ("R1", K.REVIEW_DUE, 1, 40), ("R2", K.INFO_CLOSE, 1, 30))
    [fired] = await claim(database, "a", 10, limit=1)
    async with database.uow() as uow:
        await uow.timers.done(fired.id, at=T0)
        assert await uow.timers.cancel("R1", [K.INFO_REMINDER, K.INFO_CLOSE]) == 2  # not the fired one
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.timers.pending("R1") == [(K.REVIEW_DUE, T0 + timedelta(minutes=40))]
        assert await uow.timers.cancel("R1") == 1
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.timers.pending("R1") == []
        assert len(await uow.timers.pending("R2")) == 1  # other cases untouched


async def test_an_uncommitted_schedule_leaves_no_timer(database: Database) -> None:
    async with database.uow() as uow:
        await uow.timers.schedule("R1", K.REVIEW_DUE, T0, version=1)
    assert await claim(database, "a", 60) == []
