"""What the relay writes down about its rows, each in a unit of work of its own: delivered (confirm),
a topic made or gone (write), given back to the outbox for later (release), never to be sent (give up).

At least once: a row is confirmed only after Telegram took it, so a crash between the two sends it
again (after the lease); a row confirmed is never claimed again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

from dialogs.clock import Clock
from dialogs.domain import Delivery
from dialogs.notify import Notice, Sent, delivered
from dialogs.ports import UnitOfWorkFactory

log = logging.getLogger(__name__)

CONFIRM_ATTEMPTS = 3


class RowWrites:
    def __init__(self, uow: UnitOfWorkFactory, wall_clock: Clock,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.uow = uow
        self.wall_clock = wall_clock
        self.monotonic = monotonic

    async def confirm(self, delivery: Delivery | None, notice: Notice | None, sent: Sent | None) -> None:
        """Write down what Telegram took (see dialogs.notify.delivered); `delivery` None: a prelude."""
        for attempt in range(CONFIRM_ATTEMPTS):
            try:
                async with self.uow() as uow:
                    await delivered(uow, delivery, notice, sent, self.wall_clock())
                    await uow.commit()
                return
            except Exception:
                # Unconfirmed, the row comes back after its lease and is sent again (at least once).
                log.exception("relay: confirming row %s failed (attempt %d)", delivery.id if delivery else "-",
                              attempt + 1)
                await asyncio.sleep(0.2 * 2**attempt)

    async def write(self, write: Callable[[Any], Awaitable[None]]) -> None:
        """One unit of work for what a call changed (a topic made or gone), retried like a confirm; raises
        when it cannot be written (the row then comes back after its lease)."""
        for attempt in range(CONFIRM_ATTEMPTS):
            try:
                async with self.uow() as uow:
                    await write(uow)
                    await uow.commit()
                return
            except Exception:
                if attempt + 1 >= CONFIRM_ATTEMPTS:
                    raise
                log.exception("relay: a desk write failed (attempt %d)", attempt + 1)
                await asyncio.sleep(0.2 * 2**attempt)

    async def release(self, deliveries: Iterable[Delivery], until: float, reason: str) -> int:
        """Give the rows back to the outbox until `until` (monotonic); returns how many were (0: the write
        failed, and their leases bring them back)."""
        deliveries = list(deliveries)
        if not deliveries:
            return 0
        at = self.wall_clock() + timedelta(seconds=max(0.0, until - self.monotonic()))
        try:
            async with self.uow() as uow:
                for delivery in deliveries:
                    await uow.outbox.defer(delivery.id, until=at, error=reason)
                await uow.commit()
        except Exception:  # the leases bring them back
            log.exception("relay: releasing %d rows failed", len(deliveries))
            return 0
        return len(deliveries)

    async def give_up(self, deliveries: list[Delivery], error: str) -> None:
        async with self.uow() as uow:
            for delivery in deliveries:
                await uow.outbox.give_up(delivery.id, at=self.wall_clock(), error=error)
            await uow.commit()
