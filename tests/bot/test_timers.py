"""The timer sweeper: claims due timers under a lease, fires each in its own unit of work, marks it
done; a timer held by a dead process comes back after the lease; one failing timer stops nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.workers import timers
from bot.workers.base import owner_id
from bot.workers.timers import TimerSweeper
from dialogs import sla
from dialogs.cases import CaseWorkflow
from dialogs.domain import OutboxMessage, Timer, TimerKind
from dialogs.ports import ConcurrentUpdate, UnitOfWork
from dialogs.settings import CoreSettings
from dialogs.workdays import WorkingCalendar
from storage.uow import Database
from tests.storage.factories import T0

WORKFLOW = CaseWorkflow(CoreSettings(), WorkingCalendar())
K = TimerKind


async def due_timers(database: Database, *case_nos: str) -> None:
    """One stale timer (its case does not exist: firing it does nothing) per case, due at T0."""
    async with database.uow() as uow:
        for case_no in case_nos:
            await uow.timers.schedule(case_no, K.REVIEW_DUE, T0, version=1)
        await uow.commit()


async def pending(database: Database, case_no: str) -> list[tuple[TimerKind, datetime]]:
    async with database.uow() as uow:
        return await uow.timers.pending(case_no)


def test_every_sweeper_has_its_own_owner_id() -> None:
    ids = {owner_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) <= 64 for i in ids)


async def test_a_timer_held_by_a_dead_sweeper_comes_back_after_the_lease(database: Database) -> None:
    await due_timers(database, "R1")
    async with database.uow() as uow:  # a sweeper claims it, then its process dies
        assert len(await uow.timers.claim_due(owner="dead", now=T0, lease_seconds=120, limit=10)) == 1
        await uow.commit()
    sweeper = TimerSweeper(database.uow, WORKFLOW)
    assert await sweeper.run_once(T0 + timedelta(seconds=60)) == 0
    assert await sweeper.run_once(T0 + timedelta(seconds=121)) == 1
    assert sweeper.fired == 1 and await pending(database, "R1") == []
    assert await sweeper.run_once(T0 + timedelta(days=1)) == 0  # done is done


async def test_a_failing_timer_stops_no_other_and_is_tried_again_after_the_lease(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    await due_timers(database, "R1", "R2", "R3")
    real_fire = sla.fire

    async def fire(uow: UnitOfWork, timer: Timer, now: datetime, workflow: Any) -> None:
        if timer.case_no == "R2":
            raise RuntimeError("boom")
        await real_fire(uow, timer, now, workflow)

    monkeypatch.setattr(timers.sla, "fire", fire)
    sweeper = TimerSweeper(database.uow, WORKFLOW, lease_seconds=30)
    assert await sweeper.run_once(T0) == 3
    assert (sweeper.fired, sweeper.failed) == (2, 1)
    assert await pending(database, "R1") == [] and await pending(database, "R2") == [(K.REVIEW_DUE, T0)]
    assert await sweeper.run_once(T0 + timedelta(seconds=10)) == 0  # still leased
    monkeypatch.setattr(timers.sla, "fire", real_fire)
    assert await sweeper.run_once(T0 + timedelta(seconds=31)) == 1
    assert await pending(database, "R2") == []


async def test_a_timer_that_races_a_move_is_fired_again_on_the_fresh_state(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    await due_timers(database, "R1")
    calls: list[int] = []
    real_fire = sla.fire

    async def fire(uow: UnitOfWork, timer: Timer, now: datetime, workflow: Any) -> None:
        calls.append(timer.id)
        await uow.outbox.add(_note(len(calls)))  # work the failed attempt did: rolled back
        if len(calls) == 1:
            raise ConcurrentUpdate("the case moved")
        await real_fire(uow, timer, now, workflow)

    monkeypatch.setattr(timers.sla, "fire", fire)
    sweeper = TimerSweeper(database.uow, WORKFLOW)
    assert await sweeper.run_once(T0) == 1
    assert len(calls) == 2 and sweeper.fired == 1 and await pending(database, "R1") == []
    async with database.uow() as uow:
        assert await uow.outbox.backlog() == 1  # only the second attempt's row


async def test_run_sweeps_until_stopped_and_drains_full_batches_at_once(database: Database) -> None:
    await due_timers(database, *[f"R{n}" for n in range(5)])
    sweeper = TimerSweeper(database.uow, WORKFLOW, batch=2, interval=30, clock=lambda: T0)
    stop = asyncio.Event()
    task = asyncio.create_task(sweeper.run(stop))
    for _ in range(200):  # 5 timers in batches of 2: three passes without waiting the interval
        if sweeper.fired == 5:
            break
        await asyncio.sleep(0.01)
    assert sweeper.fired == 5
    stop.set()
    await asyncio.wait_for(task, 2)  # the 30 s interval is cut short by stop


async def test_run_survives_a_failing_sweep(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    sweeper = TimerSweeper(database.uow, WORKFLOW, interval=0.01, clock=lambda: T0)
    passes: list[datetime | None] = []

    async def run_once(now: datetime | None = None) -> int:
        passes.append(now)
        if len(passes) == 1:
            raise OSError("database away")
        return 0

    monkeypatch.setattr(sweeper, "run_once", run_once)
    stop = asyncio.Event()
    task = asyncio.create_task(sweeper.run(stop))
    while len(passes) < 3:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 2)


def _note(n: int) -> OutboxMessage:
    return OutboxMessage(kind="case_card", chat_id=1, dedupe_key=f"test:{n}", payload={}, created_at=T0)
