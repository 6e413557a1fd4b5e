"""The desk's idle clock: an agent who took a customer's chat over and went quiet is reminded in the
topic after [desk] idle_remind_minutes, and after idle_release_minutes the item goes back to the queue
and the chat back to the bot (dialogs.desk.DeskService.nudge decides; this loop runs it).

Each pass lists the owned items idle past the reminder in one short transaction, then nudges each in
its own unit of work, which re-reads the item under a lock: an owner who spoke up meanwhile is left
alone, and two sweepers (two bot processes) remind once (the reminder is marked on the item, and every
message has a dedupe key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from dialogs.desk import DeskService
from dialogs.ports import ConcurrentUpdate, UnitOfWorkFactory

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class DeskSweeper:
    def __init__(self, uow_factory: UnitOfWorkFactory, desk: DeskService, *, interval: float = 30.0,
                 attempts: int = 3, clock: Callable[[], datetime] = utc_now) -> None:
        self.uow = uow_factory
        self.desk = desk
        self.interval = interval
        self.attempts = attempts  # tries of one item when its customer's conversation moves under it
        self.clock = clock
        self.reminded = 0
        self.released = 0

    async def run(self, stop: asyncio.Event) -> None:
        """A pass every `interval` seconds until `stop` (nothing at all without a desk)."""
        if not self.desk.desk.chat_id:
            return
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # the database may be away for a moment: never take the bot down
                log.exception("desk idle sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def run_once(self, now: datetime | None = None) -> int:
        """Nudge every owner quiet at `now` (default: the clock); returns how many were reminded or released."""
        now = now or self.clock()
        async with self.uow() as uow:
            items = await self.desk.idle_items(uow, now)
        done = 0
        for item in items:
            done += await self._nudge(item.key, now)
        return done

    async def _nudge(self, key: str, now: datetime) -> int:
        for attempt in range(1, self.attempts + 1):
            try:
                async with self.uow() as uow:
                    what = await self.desk.nudge(uow, key, now)
                    await uow.commit()
            except ConcurrentUpdate:
                log.info("desk item %s: the customer's chat moved during the idle check (attempt %d)", key, attempt)
                continue
            except Exception:
                log.exception("desk item %s: idle check failed", key)
                return 0
            if what == "reminded":
                self.reminded += 1
            elif what == "released":
                self.released += 1
            return 1 if what else 0
        return 0
