"""The desk's idle clock: an agent who took a customer's chat over and went quiet is reminded in the
topic after [desk] idle_remind_minutes, and after idle_release_minutes the item goes back to the queue
and the chat back to the bot (dialogs.desk.DeskService.nudge decides; this `Sweep` runs it).

Each pass lists the owned items idle past the reminder in one short transaction, then nudges each in
its own unit of work, which re-reads the item under a lock: an owner who spoke up meanwhile is left
alone, and two sweepers (two bot processes) remind once (the reminder is marked on the item, and every
message has a dedupe key).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

from bot.workers.base import Sweep
from dialogs.clock import Clock, utcnow
from dialogs.desk import DeskService
from dialogs.ports import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)


class DeskSweeper(Sweep[str]):
    """Items are desk keys; the work is DeskService.nudge ("reminded", "released" or "": nothing due)."""

    what = "desk idle sweep"
    log = log

    def __init__(self, uow_factory: UnitOfWorkFactory, desk: DeskService, *, interval: float = 30.0,
                 attempts: int = 3, clock: Clock = utcnow) -> None:
        super().__init__(uow_factory, interval=interval, attempts=attempts, clock=clock)
        self.desk = desk
        self.reminded = 0
        self.released = 0

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """A pass every `interval` seconds until stopped (nothing at all without a desk)."""
        if not self.desk.desk.chat_id:
            return
        await super().run(stop)

    async def run_once(self, now: datetime | None = None) -> int:
        """Nudge every owner quiet at `now` (default: the clock); returns how many were reminded or released."""
        now = now or self.clock()
        done = 0
        for key in await self.claim(now):
            done += await self.one(key, now)
        return done

    async def claim(self, now: datetime) -> Sequence[str]:
        async with self.uow() as uow:
            items = await self.desk.idle_items(uow, now)
        return [item.key for item in items]

    async def work(self, uow: UnitOfWork, item: str, now: datetime) -> str:
        return await self.desk.nudge(uow, item, now)

    def worked(self, item: str, answer: str) -> int:
        if answer == "reminded":
            self.reminded += 1
        elif answer == "released":
            self.released += 1
        return 1 if answer else 0

    def raced(self, item: str, exc: Exception, attempt: int) -> None:
        log.info("desk item %s: the customer's chat moved during the idle check (attempt %d)", item, attempt)

    def errored(self, item: str) -> None:
        log.exception("desk item %s: idle check failed", item)
