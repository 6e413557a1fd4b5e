"""The one worker loop (bot.workers.base.Sweep): items in their own unit of work, lost races tried
again a bounded number of times, a stop that waits for the pass in flight instead of cancelling it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import pytest

from bot.workers.base import Sweep, owner_id
from bot.workers.housekeeping import Chore, Prune
from dialogs.ports import ConcurrentUpdate

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


class FakeUnitOfWork:
    def __init__(self, commits: list[str]) -> None:
        self.commits = commits

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None

    async def commit(self) -> None:
        self.commits.append("commit")


class Items(Sweep[str]):
    """Works the items it is given; an item's script says how each try ends."""

    what = "item sweep"

    def __init__(self, scripts: dict[str, list[str]], **kwargs: Any) -> None:
        self.commits: list[str] = []
        super().__init__(lambda: FakeUnitOfWork(self.commits), interval=30, **kwargs)  # type: ignore[arg-type, return-value]
        self.scripts = scripts
        self.done: list[str] = []
        self.given_up: list[str] = []

    async def claim(self, now: datetime) -> Sequence[str]:
        return list(self.scripts)

    async def work(self, uow: Any, item: str, now: datetime) -> str:
        outcome = self.scripts[item].pop(0)
        if outcome == "race":
            raise ConcurrentUpdate(item)
        if outcome == "boom":
            raise OSError(item)
        return item

    def worked(self, item: str, answer: Any) -> int:
        self.done.append(answer)
        return 1

    def gave_up(self, item: str) -> None:
        self.given_up.append(item)


async def test_an_item_that_loses_a_race_is_worked_again_on_the_fresh_state() -> None:
    sweep = Items({"a": ["race", "ok"], "b": ["ok"]})
    assert await sweep.run_once(T0) == 2
    assert sweep.done == ["a", "b"] and sweep.commits == ["commit", "commit"]


async def test_an_item_that_keeps_losing_races_is_left_after_its_attempts() -> None:
    sweep = Items({"a": ["race", "race", "race", "ok"], "b": ["ok"]}, attempts=3)
    await sweep.run_once(T0)
    assert sweep.done == ["b"] and sweep.given_up == ["a"]


async def test_a_failing_item_is_logged_and_never_stops_the_others(caplog: pytest.LogCaptureFixture) -> None:
    sweep = Items({"a": ["boom", "ok"], "b": ["ok"]})
    with caplog.at_level(logging.ERROR):
        await sweep.run_once(T0)
    assert sweep.done == ["b"] and sweep.given_up == ["a"]  # not tried again this pass
    assert "'a' failed" in caplog.text


async def test_a_stop_cuts_the_wait_short() -> None:
    sweep = Items({})
    task = asyncio.create_task(sweep.run())
    await asyncio.sleep(0.05)
    sweep.stop()
    await asyncio.wait_for(task, 1)  # well before the 30 s interval


async def test_a_stop_lets_the_job_in_flight_finish() -> None:
    started, finished = asyncio.Event(), []

    async def job() -> None:
        started.set()
        await asyncio.sleep(0.05)
        finished.append(True)

    chore = Chore(job, "slow job", every=3600)
    task = asyncio.create_task(chore.run())
    await started.wait()
    chore.stop()
    await asyncio.wait_for(task, 1)
    assert finished == [True]


async def test_a_chore_goes_on_after_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []

    async def prune() -> int:
        runs.append(1)
        if len(runs) == 1:
            raise OSError("database away")
        return 2

    stop = asyncio.Event()
    chore = Prune(prune, "old rows", every=0.01)
    with caplog.at_level(logging.INFO):
        task = asyncio.create_task(chore.run(stop))
        while len(runs) < 3:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 1)
    assert "pruning old rows failed" in caplog.text and "forgot 2 old rows" in caplog.text


def test_an_owner_id_names_its_role_and_fits_the_column() -> None:
    relay = owner_id("relay")
    assert relay.startswith("relay:") and len(relay) <= 64 and relay != owner_id("relay")
