"""Housekeeping: small jobs on a timer (SQLite's checkpoint every second; forgetting old update
claims, replay-ledger nonces and orphaned evidence every hour or so). Each is a `Sweep` of one job: a
failure is logged and the next run comes all the same; a stop lets the run in flight finish."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.workers.base import Sweep

log = logging.getLogger(__name__)


class Chore(Sweep[None]):
    """`job` at once, then every `every` seconds until stopped; "<what> failed" when it raises."""

    log = log

    def __init__(self, job: Callable[[], Awaitable[Any]], what: str, *, every: float) -> None:
        super().__init__(interval=every)
        self.job = job
        self.what = what

    async def run_once(self, now: object = None) -> int:
        await self.job()
        return 0


class Prune(Chore):
    """A chore that forgets what is too old to matter, and says how much it forgot."""

    def __init__(self, prune: Callable[[], Awaitable[int]], things: str, *, every: float = 3600) -> None:
        super().__init__(prune, f"pruning {things}", every=every)
        self.things = things

    async def run_once(self, now: object = None) -> int:
        forgotten: int = await self.job()
        if forgotten:
            log.info("forgot %d %s", forgotten, self.things)
        return 0  # never a batch: the next run waits `every`

