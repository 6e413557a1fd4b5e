"""The timer sweeper (a `Sweep`): fires the case timers that came due (needs_info reminders and closing,
overdue review and credit deadlines; see dialogs.sla).

Each pass claims a batch of due timers under a lease with this sweeper's own owner id (one short
transaction), then fires each in its own unit of work and marks it done in that same transaction.
So a timer fires once: two sweepers on one database never hold the same timer while its lease
lasts, and a timer claimed by a process that died comes back when the lease runs out. A fire that
keeps failing is logged and retried after the lease; it never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from bot.workers.base import Sweep, owner_id
from dialogs import sla
from dialogs.cases import CaseWorkflow
from dialogs.clock import Clock, utcnow
from dialogs.domain import Timer
from dialogs.lifecycle import ForbiddenTransition
from dialogs.ports import ConcurrentUpdate, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)


class TimerSweeper(Sweep[Timer]):
    what = "timer sweep"
    log = log
    # The case moved while the timer fired: on the fresh state it is most likely stale.
    races: ClassVar[tuple[type[Exception], ...]] = (ConcurrentUpdate, ForbiddenTransition)
    batch: int

    def __init__(self, database_uow_factory: UnitOfWorkFactory, workflow: CaseWorkflow, *,
                 owner: str | None = None, lease_seconds: float = 120.0, batch: int = 100,
                 interval: float = 5.0, attempts: int = 3, clock: Clock = utcnow) -> None:
        super().__init__(database_uow_factory, interval=interval, batch=batch, attempts=attempts, clock=clock)
        self.workflow = workflow
        self.owner = owner or owner_id()
        self.lease_seconds = lease_seconds
        self.fired = 0
        self.failed = 0

    async def claim(self, now: datetime) -> Sequence[Timer]:
        async with self.uow() as uow:
            timers = await uow.timers.claim_due(owner=self.owner, now=now, lease_seconds=self.lease_seconds,
                                                limit=self.batch)
            await uow.commit()
        return timers

    async def work(self, uow: UnitOfWork, item: Timer, now: datetime) -> None:
        await sla.fire(uow, item, now, self.workflow)
        await uow.timers.done(item.id, at=now)

    def worked(self, item: Timer, answer: object) -> int:
        self.fired += 1
        return 1

    def raced(self, item: Timer, exc: Exception, attempt: int) -> None:
        log.info("timer %s of case %s raced a move (%s), attempt %d", item.id, item.case_no, exc, attempt)

    def errored(self, item: Timer) -> None:
        log.exception("timer %s (%s) of case %s failed; retried after the lease",
                      item.id, item.kind.value, item.case_no)

    def gave_up(self, item: Timer) -> None:
        self.failed += 1
