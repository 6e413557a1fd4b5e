"""The timer sweeper: fires the case timers that came due (needs_info reminders and closing,
overdue review and credit deadlines; see dialogs.sla).

Each pass claims a batch of due timers under a lease with this sweeper's own owner id (one short
transaction), then fires each in its own unit of work and marks it done in that same transaction.
So a timer fires once: two sweepers on one database never hold the same timer while its lease
lasts, and a timer claimed by a process that died comes back when the lease runs out. A fire that
keeps failing is logged and retried after the lease; it never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from dialogs import sla
from dialogs.cases import CaseWorkflow
from dialogs.domain import Timer
from dialogs.lifecycle import ForbiddenTransition
from dialogs.ports import ConcurrentUpdate, UnitOfWorkFactory

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def owner_id() -> str:
    """Unique per sweeper: host, process and a random part (claimed_by holds 64 characters)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class TimerSweeper:
    def __init__(self, database_uow_factory: UnitOfWorkFactory, workflow: CaseWorkflow, *,
                 owner: str | None = None, lease_seconds: float = 120.0, batch: int = 100,
                 interval: float = 5.0, attempts: int = 3, clock: Callable[[], datetime] = utc_now) -> None:
        self.uow = database_uow_factory
        self.workflow = workflow
        self.owner = owner or owner_id()
        self.lease_seconds = lease_seconds
        self.batch = batch
        self.interval = interval
        self.attempts = attempts  # tries of one timer when the case moves under it
        self.clock = clock
        self.fired = 0
        self.failed = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every `interval` seconds (at once again while full batches come back) until `stop`."""
        while not stop.is_set():
            claimed = 0
            try:
                claimed = await self.run_once()
            except Exception:  # the database may be away for a moment: never take the bot down
                log.exception("timer sweep failed")
            if claimed >= self.batch:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def run_once(self, now: datetime | None = None) -> int:
        """Claim the timers due at `now` (default: the clock) and fire them; returns how many were claimed."""
        now = now or self.clock()
        async with self.uow() as uow:
            timers = await uow.timers.claim_due(owner=self.owner, now=now, lease_seconds=self.lease_seconds,
                                                limit=self.batch)
            await uow.commit()
        for timer in timers:
            await self._fire(timer, now)
        return len(timers)

    async def _fire(self, timer: Timer, now: datetime) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                async with self.uow() as uow:
                    await sla.fire(uow, timer, now, self.workflow)
                    await uow.timers.done(timer.id, at=now)
                    await uow.commit()
                self.fired += 1
                return
            except (ConcurrentUpdate, ForbiddenTransition) as exc:
                # The case moved while the timer fired: on the fresh state it is most likely stale.
                log.info("timer %s of case %s raced a move (%s), attempt %d", timer.id, timer.case_no, exc, attempt)
            except Exception:
                log.exception("timer %s (%s) of case %s failed; retried after the lease",
                              timer.id, timer.kind.value, timer.case_no)
                break
        self.failed += 1
