"""The one loop under every background worker: `Sweep`.

A pass claims a batch in one short transaction (rows that other processes may want, under a lease
with the worker's own `owner_id`), then works each item in its own unit of work, so one item's failure
never undoes another's. An item that loses a race (`ConcurrentUpdate`: its row moved under it) is
tried again on the fresh state, a bounded number of times; any other failure is logged and the item
left for a later pass. After a full batch the next pass starts at once, else after `interval` seconds.

A sweep stops when asked (`stop()`, or the event given to `run`): the pass in flight finishes, nothing
new is claimed. It is never cancelled midway: a cancelled pass could leave a call made and unrecorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from dialogs.clock import Clock, utcnow
from dialogs.ports import ConcurrentUpdate, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

Item = TypeVar("Item")


def owner_id(role: str = "") -> str:
    """Unique per worker instance: its role, host, process and a random part (claimed_by holds 64
    characters)."""
    unique = f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    return f"{role}:{unique}" if role else unique


class Sweep(Generic[Item]):
    """Subclasses name themselves (`what`, for the log: "<what> failed") and either implement `claim`
    and `work` (the common case) or replace `run_once` with a pass of their own."""

    what: str = "sweep"
    log: ClassVar[logging.Logger] = log  # subclasses log under their own module's name
    races: ClassVar[tuple[type[Exception], ...]] = (ConcurrentUpdate,)

    def __init__(self, uow: UnitOfWorkFactory | None = None, *, interval: float, batch: int | None = None,
                 attempts: int = 3, clock: Clock = utcnow) -> None:
        self._uow = uow  # None: a sweep that works no items (it replaces run_once)
        self.interval = interval
        self.batch = batch  # None: never go again at once
        self.attempts = attempts  # tries of one item that keeps losing races
        self.clock = clock
        self._stop = asyncio.Event()

    def uow(self) -> UnitOfWork:
        """A new unit of work (`async with self.uow() as uow`)."""
        if self._uow is None:
            raise TypeError(f"{type(self).__name__} was given no unit of work")
        return self._uow()

    # -- driving it ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to stop after the pass in flight."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Pass after pass until stopped (`stop()`, or `stop` set): every `interval` seconds, at once
        again while full batches come back. A failing pass is logged; the loop goes on."""
        if stop is not None:
            self._stop = stop
        while not self._stop.is_set():
            claimed = 0
            try:
                claimed = await self.tick()
            except Exception:  # the database may be away for a moment: never take the bot down
                self.log.exception("%s failed", self.what)
            if self.go_again(claimed):
                continue
            await self.pause()

    async def tick(self) -> int:
        """One pass of the loop; returns how many items it claimed."""
        return await self.run_once()

    def go_again(self, claimed: int) -> bool:
        return self.batch is not None and claimed >= self.batch

    async def pause(self) -> None:
        """Wait `interval` seconds, cut short by a stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), self.interval)

    # -- one pass -----------------------------------------------------------------------------------

    async def run_once(self, now: datetime | None = None) -> int:
        """Claim the items due at `now` (default: the clock) and work each; returns how many were claimed."""
        now = now or self.clock()
        items = await self.claim(now)
        for item in items:
            await self.one(item, now)
        return len(items)

    async def claim(self, now: datetime) -> Sequence[Item]:
        raise NotImplementedError

    async def work(self, uow: UnitOfWork, item: Item, now: datetime) -> Any:
        """Do the item's work in `uow` (committed by the caller); the answer goes to `worked`."""
        raise NotImplementedError

    async def one(self, item: Item, now: datetime) -> int:
        """Work `item` in its own unit of work, again on a lost race; returns what `worked` counts (0 when
        it came to nothing)."""
        for attempt in range(1, self.attempts + 1):
            try:
                async with self.uow() as uow:
                    answer = await self.work(uow, item, now)
                    await uow.commit()
            except self.races as exc:
                self.raced(item, exc, attempt)
                continue
            except Exception:  # noqa: BLE001 - errored() logs it, with the traceback
                self.errored(item)
                break
            return self.worked(item, answer)
        self.gave_up(item)
        return 0

    def worked(self, item: Item, answer: Any) -> int:
        """The item's work was committed with `answer`; returns how much it counts for."""
        return 1

    def raced(self, item: Item, exc: Exception, attempt: int) -> None:
        self.log.info("%r lost a race (%s), attempt %d", item, exc, attempt)

    def errored(self, item: Item) -> None:
        """Called inside the `except`: log.exception has the traceback."""
        self.log.exception("%r failed", item)

    def gave_up(self, item: Item) -> None:
        """The item came to nothing this pass (its races ran out, or it failed)."""
